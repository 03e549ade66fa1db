//! Segmenters, the in-memory window and playlist writers.
