//! fMP4/CMAF init segments and fragments. Built by the fMP4 work.
