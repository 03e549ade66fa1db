-- Adaptive bitrate (issue 14): which ladder a camera is transcoded into. 'off' (no
-- transcoding) or 'default' (the node's --abr-ladder).
ALTER TABLE cameras ADD COLUMN abr_profile TEXT NOT NULL DEFAULT 'off';
