//! Which stream a WHEP viewer of a B-frame camera gets. Browsers' WebRTC H.264 receivers
//! decode in arrival order and do not reorder ([`super::h264::reorders`]), so a camera whose
//! encoder uses B-frames cannot be played as is; its ABR renditions can (the transcoder
//! encodes them with x264 without B-frames, `abr/transcoder.rs`). Pure: the HTTP shell
//! (`http::whep`) gathers the camera's live renditions and whether this node transcodes it,
//! and acts on the choice. docs/webrtc.md, "B-frames".

/// A live rendition of the camera, as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rendition<'a> {
    /// Its name (`480p`), the part after `~` in its stream id.
    pub(crate) name: &'a str,
    /// Its picture height, once its first video configuration came (`None`: it has no
    /// picture to start a viewer on yet).
    pub(crate) height: Option<u32>,
    /// Its measured bit rate (a tie-break between renditions of the same height).
    pub(crate) bps: u64,
}

/// What a viewer of a B-frame camera gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback<'a> {
    /// This rendition: the highest one with a picture.
    Rendition(&'a str),
    /// The camera is transcoded here but no rendition has a picture yet (the transcoder is
    /// starting or restarting): ask again shortly.
    Starting,
    /// The camera has no ABR ladder on this node: refuse, saying how to get one.
    Refuse,
}

/// Chooses for a camera whose own stream was refused for B-frames: its highest rendition
/// (tallest, then highest bit rate, then the smallest name, so the answer is the same for
/// every viewer), [`Fallback::Starting`] while `transcoding` but no rendition has a picture,
/// [`Fallback::Refuse`] otherwise.
pub(crate) fn fallback<'a>(renditions: &[Rendition<'a>], transcoding: bool) -> Fallback<'a> {
    let best = renditions
        .iter()
        .filter_map(|r| r.height.map(|h| (h, r)))
        .max_by(|(ha, a), (hb, b)| ha.cmp(hb).then(a.bps.cmp(&b.bps)).then(b.name.cmp(a.name)));
    match (best, transcoding) {
        (Some((_, r)), _) => Fallback::Rendition(r.name),
        (None, true) => Fallback::Starting,
        (None, false) => Fallback::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, height: Option<u32>, bps: u64) -> Rendition<'_> {
        Rendition { name, height, bps }
    }

    #[test]
    fn the_tallest_rendition_with_a_picture_is_chosen() {
        // Names sort "240p" < "480p" < "720p" as text but "1080p" < "240p": height decides.
        let ladder = [
            r("240p", Some(240), 400_000),
            r("1080p", Some(1080), 5_000_000),
            r("480p", Some(480), 1_000_000),
        ];
        assert_eq!(fallback(&ladder, true), Fallback::Rendition("1080p"));
        // The same without the transcoding flag: live renditions are what counts.
        assert_eq!(fallback(&ladder, false), Fallback::Rendition("1080p"));
        // A taller rendition that has no picture yet is passed over.
        let ladder = [r("720p", None, 0), r("480p", Some(480), 900_000)];
        assert_eq!(fallback(&ladder, true), Fallback::Rendition("480p"));
    }

    #[test]
    fn equal_heights_go_to_the_higher_bit_rate_then_the_first_name() {
        let ladder = [r("b", Some(480), 900_000), r("a", Some(480), 1_000_000)];
        assert_eq!(fallback(&ladder, true), Fallback::Rendition("a"));
        let ladder = [r("b", Some(480), 1_000), r("a", Some(480), 1_000)];
        assert_eq!(fallback(&ladder, true), Fallback::Rendition("a"));
        let reversed = [ladder[1], ladder[0]];
        assert_eq!(fallback(&reversed, true), Fallback::Rendition("a"));
    }

    #[test]
    fn without_a_playable_rendition_a_transcoded_camera_waits_and_others_are_refused() {
        assert_eq!(fallback(&[], true), Fallback::Starting);
        assert_eq!(fallback(&[r("480p", None, 0)], true), Fallback::Starting);
        assert_eq!(fallback(&[], false), Fallback::Refuse);
        assert_eq!(fallback(&[r("480p", None, 0)], false), Fallback::Refuse);
    }
}
