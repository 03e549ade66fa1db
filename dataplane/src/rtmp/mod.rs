//! The sans-IO RTMP server session. Built by the ingest work.
