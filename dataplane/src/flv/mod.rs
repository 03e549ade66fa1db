//! FLV audio/video tag bodies (as RTMP carries them) to media events. Built by the ingest work.
