//! Adaptive bitrate: which cameras get a rendition ladder. The data plane asks when a camera
//! goes live (not per frame); the control plane answers from the camera's `abrProfile`.

use crate::auth::BoxFuture;

/// The separator between a camera id and a rendition name in the id of a rendition's
/// stream (`{camera}~{rendition}`, e.g. `cam1~480p`). Not a character camera ids may hold
/// ([`crate::auth::is_valid_camera_id`]), so no camera can be mistaken for a rendition.
pub const RENDITION_SEPARATOR: char = '~';

/// Splits a rendition stream id into camera and rendition (`None` for a camera's own id).
pub fn split_rendition(id: &str) -> Option<(&str, &str)> {
    id.split_once(RENDITION_SEPARATOR)
}

/// The camera a stream id belongs to: itself, or the camera of a rendition.
pub fn source_camera(id: &str) -> &str {
    split_rendition(id).map_or(id, |(camera, _)| camera)
}

/// Decides which cameras are transcoded into a ladder.
pub trait AbrPolicy: Send + Sync + 'static {
    /// The ABR profile of `camera` (`"default"`: the node's ladder), `None` for none.
    ///
    /// # Errors
    /// The source could not answer (the data plane then changes nothing: a running ladder
    /// keeps running, none is started).
    fn profile<'a>(&'a self, camera: &'a str) -> BoxFuture<'a, Result<Option<String>, String>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendition_ids_split_at_the_separator() {
        assert_eq!(split_rendition("cam~480p"), Some(("cam", "480p")));
        assert_eq!(split_rendition("cam"), None);
        assert_eq!(source_camera("cam~480p"), "cam");
        assert_eq!(source_camera("cam"), "cam");
        assert!(!crate::auth::is_valid_camera_id("cam~480p"));
    }
}
