//! The init segment (CMAF header): `ftyp` + `moov` describing the tracks, no samples.
//!
//! Every sample table in `stbl` is empty (samples live in fragments); `mvex`/`trex` marks
//! the file as fragmented. Built once per configuration change, so it allocates freely.
//!
//! Spec: ISO/IEC 14496-12 §8.2–8.7 (`moov` … `stbl`), §8.8.1/§8.8.3 (`mvex`, `trex`);
//! ISO/IEC 14496-15 §5.3.3 (`avc1`/`avcC`); ISO/IEC 14496-14 §5.6.1 and 14496-1 §7.2.6.5–7
//! (`esds`: ES_Descriptor, DecoderConfigDescriptor, DecoderSpecificInfo); ISO/IEC 23000-19
//! §7.3 (CMAF header constraints).

use bytes::Bytes;
use camstream_protocol::{AacConfig, AudioConfig, AvcConfig, VideoConfig};
use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Codec, Dinf, Dref, Encode as _, Esds, FixedPoint, FourCC, Ftyp, Hdlr,
    Mdhd, Mdia, Minf, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tkhd, Trak, Trex, Url,
    Visual, Vmhd,
};

use super::{AUDIO_TRACK_ID, Fmp4Error, VIDEO_TIMESCALE, VIDEO_TRACK_ID};

/// `ftyp` major brand. `iso5` is what ISO/IEC 14496-12 asks for when `tfhd` sets
/// default-base-is-moof (our fragments do), and what ffmpeg's HLS fMP4 muxer writes, so
/// Safari, hls.js and ffmpeg all take it.
const MAJOR_BRAND: FourCC = FourCC::new(b"iso5");
/// `ftyp` compatible brands. `iso5` repeats the major brand (readers check this list);
/// `iso6` because fragments carry `tfdt` (the isoN brands are cumulative, so this also covers
/// iso4's signed composition offsets in `trun` version 1); `cmfc` declares CMAF tracks
/// (ISO/IEC 23000-19 §7.2), which LL-HLS expects; `mp41` lets tools that look for an MP4
/// brand open recorded files.
const COMPATIBLE_BRANDS: [FourCC; 4] = [
    FourCC::new(b"iso5"),
    FourCC::new(b"iso6"),
    FourCC::new(b"cmfc"),
    FourCC::new(b"mp41"),
];
/// `mvhd` timescale: only the (zero) movie duration uses it.
const MOVIE_TIMESCALE: u32 = 1000;
/// `objectTypeIndication` for MPEG-4 Audio (ISO/IEC 14496-1 Table 5).
const OBJECT_TYPE_MPEG4_AUDIO: u8 = 0x40;
/// `streamType` for an audio stream (ISO/IEC 14496-1 Table 6).
const STREAM_TYPE_AUDIO: u8 = 0x05;

/// The init segment for whichever tracks exist: video track [`VIDEO_TRACK_ID`] at 90 kHz,
/// audio track [`AUDIO_TRACK_ID`] at its sample rate.
///
/// # Errors
/// [`Fmp4Error::NoTracks`] with neither track, `Unsupported*` for a codec with no sample
/// entry here, [`Fmp4Error::Encode`] when a configuration field is out of range for its box.
pub(crate) fn init_segment(
    video: Option<&VideoConfig>,
    audio: Option<&AudioConfig>,
) -> Result<Bytes, Fmp4Error> {
    let mut trak = Vec::with_capacity(2);
    let mut trex = Vec::with_capacity(2);
    if let Some(video) = video {
        match video {
            VideoConfig::H264(avc) => trak.push(video_trak(avc)),
            other => return Err(Fmp4Error::UnsupportedVideo(other.codec())),
        }
        trex.push(track_extends(VIDEO_TRACK_ID));
    }
    if let Some(audio) = audio {
        match audio {
            AudioConfig::Aac(aac) => trak.push(audio_trak(aac)),
            other => return Err(Fmp4Error::UnsupportedAudio(other.codec())),
        }
        trex.push(track_extends(AUDIO_TRACK_ID));
    }
    if trak.is_empty() {
        return Err(Fmp4Error::NoTracks);
    }
    let ftyp = Ftyp {
        major_brand: MAJOR_BRAND,
        minor_version: 0,
        compatible_brands: COMPATIBLE_BRANDS.to_vec(),
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: MOVIE_TIMESCALE,
            duration: 0,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: AUDIO_TRACK_ID + 1,
            ..Mvhd::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak,
        ..Moov::default()
    };
    let mut buf = Vec::with_capacity(1024);
    ftyp.encode(&mut buf).map_err(Fmp4Error::encode("ftyp"))?;
    moov.encode(&mut buf).map_err(Fmp4Error::encode("moov"))?;
    Ok(Bytes::from(buf))
}

fn video_trak(avc: &AvcConfig) -> Trak {
    // tkhd and the sample entry hold 16-bit sizes; an SPS cannot describe more in practice.
    let width = u16::try_from(avc.width).unwrap_or(u16::MAX);
    let height = u16::try_from(avc.height).unwrap_or(u16::MAX);
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Visual::default()
        },
        avcc: avc_configuration(avc),
        ..Avc1::default()
    };
    Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK_ID,
            enabled: true,
            in_movie: true,
            width: FixedPoint::new(width, 0),
            height: FixedPoint::new(height, 0),
            ..Tkhd::default()
        },
        mdia: Mdia {
            mdhd: media_header(VIDEO_TIMESCALE),
            hdlr: Hdlr {
                handler: FourCC::new(b"vide"),
                name: "VideoHandler".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: self_contained(),
                stbl: empty_sample_table(avc1.into()),
                ..Minf::default()
            },
        },
        ..Trak::default()
    }
}

/// The `avcC` box: the AVCDecoderConfigurationRecord as the encoder sent it, including the
/// High-profile extension (chroma format, bit depths) our own parser does not keep. A
/// record `mp4-atom` cannot read back is rebuilt from the fields we did parse.
fn avc_configuration(avc: &AvcConfig) -> Avcc {
    match Avcc::decode_body(&mut avc.record.as_ref()) {
        Ok(avcc) => avcc,
        Err(_) => Avcc {
            configuration_version: 1,
            avc_profile_indication: avc.profile,
            profile_compatibility: avc.compatibility,
            avc_level_indication: avc.level,
            length_size: avc.nal_length_size,
            sequence_parameter_sets: avc.sps.iter().map(|s| s.to_vec()).collect(),
            picture_parameter_sets: avc.pps.iter().map(|p| p.to_vec()).collect(),
            ext: None,
        },
    }
}

fn audio_trak(aac: &AacConfig) -> Trak {
    let (profile, freq_index, chan_conf) = (
        aac.object_type,
        aac.sampling_frequency_index,
        aac.channel_config,
    );
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: aac.channels(),
            sample_size: 16,
            // 16.16 field: rates above 65535 Hz write 0 and readers take mdhd's timescale.
            sample_rate: FixedPoint::new(u16::try_from(aac.sample_rate).unwrap_or(0), 0),
        },
        esds: Esds {
            es_desc: EsDescriptor {
                // ffmpeg and Apple's tools use the track id; nothing depends on it.
                es_id: AUDIO_TRACK_ID as u16,
                dec_config: DecoderConfig {
                    object_type_indication: OBJECT_TYPE_MPEG4_AUDIO,
                    stream_type: STREAM_TYPE_AUDIO,
                    dec_specific: Some(DecoderSpecific {
                        profile,
                        freq_index,
                        chan_conf,
                        // The AudioSpecificConfig verbatim: SBR/PS signalling and explicit
                        // rates survive.
                        raw: aac.asc.to_vec(),
                    }),
                    ..DecoderConfig::default()
                },
                sl_config: SLConfig {},
                ..EsDescriptor::default()
            },
        },
        btrt: None,
        taic: None,
    };
    Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Tkhd::default()
        },
        mdia: Mdia {
            mdhd: media_header(aac.sample_rate),
            hdlr: Hdlr {
                handler: FourCC::new(b"soun"),
                name: "SoundHandler".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: self_contained(),
                stbl: empty_sample_table(mp4a.into()),
                ..Minf::default()
            },
        },
        ..Trak::default()
    }
}

fn media_header(timescale: u32) -> Mdhd {
    Mdhd {
        timescale,
        language: "und".into(),
        ..Mdhd::default()
    }
}

/// A `dref` with one empty `url ` entry: "the media data is in this file".
fn self_contained() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url::default().into()],
        },
    }
}

/// `stbl` with the sample entry and the mandatory tables, all empty: samples come in
/// fragments (ISO/IEC 23000-19 §7.5.2 requires zero entries in the CMAF header).
fn empty_sample_table(codec: Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stco: Some(Stco::default()),
        ..Stbl::default()
    }
}

fn track_extends(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        ..Trex::default()
    }
}

#[cfg(test)]
mod tests {
    use mp4_atom::StszSamples;

    use super::*;
    use crate::fmp4::parse::{find_box, parse_init};
    use crate::fmp4::tests::clip_media;

    fn assert_empty_tables(stbl: &Stbl) {
        assert!(stbl.stts.entries.is_empty());
        assert!(stbl.stsc.entries.is_empty());
        assert_eq!(stbl.stsz.samples, StszSamples::Different { sizes: vec![] });
        assert_eq!(stbl.stco.as_ref().map(|s| s.entries.len()), Some(0));
        assert!(stbl.ctts.is_none() && stbl.stss.is_none() && stbl.co64.is_none());
        assert_eq!(stbl.stsd.codecs.len(), 1);
    }

    fn assert_self_contained(minf: &Minf) {
        assert_eq!(minf.dinf.dref.entries, vec![Url::default().into()]);
    }

    #[test]
    fn video_and_audio_tracks() {
        let clip = clip_media();
        let (VideoConfig::H264(avc), AudioConfig::Aac(aac)) = (&clip.video, &clip.audio) else {
            panic!("clip is H.264 + AAC");
        };
        let init = init_segment(Some(&clip.video), Some(&clip.audio)).unwrap();
        let (ftyp, moov) = parse_init(&init);

        assert_eq!(ftyp.major_brand, FourCC::new(b"iso5"));
        assert_eq!(
            ftyp.compatible_brands,
            [b"iso5", b"iso6", b"cmfc", b"mp41"].map(FourCC::new)
        );
        assert_eq!(moov.mvhd.timescale, MOVIE_TIMESCALE);
        assert_eq!(moov.mvhd.duration, 0);
        assert_eq!(moov.mvhd.next_track_id, 3);
        let trex = &moov
            .mvex
            .as_ref()
            .expect("mvex marks the file fragmented")
            .trex;
        assert_eq!(
            trex.iter().map(|t| t.track_id).collect::<Vec<_>>(),
            [VIDEO_TRACK_ID, AUDIO_TRACK_ID]
        );
        assert!(trex.iter().all(|t| t.default_sample_description_index == 1));
        assert_eq!(moov.trak.len(), 2);

        let v = &moov.trak[0];
        assert_eq!(v.tkhd.track_id, VIDEO_TRACK_ID);
        assert!(v.tkhd.enabled && v.tkhd.in_movie);
        assert_eq!(
            (v.tkhd.width.integer(), v.tkhd.height.integer()),
            (1280, 720)
        );
        assert_eq!(v.mdia.mdhd.timescale, VIDEO_TIMESCALE);
        assert_eq!(v.mdia.mdhd.language, "und");
        assert_eq!(v.mdia.hdlr.handler, FourCC::new(b"vide"));
        assert!(v.mdia.minf.vmhd.is_some() && v.mdia.minf.smhd.is_none());
        assert_self_contained(&v.mdia.minf);
        assert_empty_tables(&v.mdia.minf.stbl);
        let Codec::Avc1(avc1) = &v.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("video sample entry is avc1");
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (1280, 720));
        assert_eq!(avc1.visual.data_reference_index, 1);
        assert_eq!(avc1.avcc.avc_profile_indication, avc.profile);
        assert_eq!(avc1.avcc.profile_compatibility, avc.compatibility);
        assert_eq!(avc1.avcc.avc_level_indication, avc.level);
        assert_eq!(avc1.avcc.length_size, avc.nal_length_size);
        assert_eq!(avc1.avcc.sequence_parameter_sets, [avc.sps[0].to_vec()]);
        assert_eq!(avc1.avcc.picture_parameter_sets, [avc.pps[0].to_vec()]);
        // The box body is the encoder's record, byte for byte.
        assert_eq!(find_box(&init, b"avcC"), Some(&avc.record[..]));

        let a = &moov.trak[1];
        assert_eq!(a.tkhd.track_id, AUDIO_TRACK_ID);
        assert!(a.tkhd.enabled && a.tkhd.in_movie);
        assert_eq!(a.mdia.mdhd.timescale, 48_000);
        assert_eq!(a.mdia.hdlr.handler, FourCC::new(b"soun"));
        assert!(a.mdia.minf.smhd.is_some() && a.mdia.minf.vmhd.is_none());
        assert_self_contained(&a.mdia.minf);
        assert_empty_tables(&a.mdia.minf.stbl);
        let Codec::Mp4a(mp4a) = &a.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("audio sample entry is mp4a");
        };
        assert_eq!(mp4a.audio.channel_count, 2);
        assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        assert_eq!(mp4a.audio.data_reference_index, 1);
        let dc = &mp4a.esds.es_desc.dec_config;
        assert_eq!(dc.object_type_indication, 0x40);
        assert_eq!(dc.stream_type, 5);
        let dsi = dc.dec_specific.as_ref().expect("AudioSpecificConfig");
        assert_eq!(dsi.raw, aac.asc.to_vec());
        assert_eq!((dsi.profile, dsi.freq_index, dsi.chan_conf), (2, 3, 2));
    }

    #[test]
    fn single_track_segments() {
        let clip = clip_media();
        let (_, moov) = parse_init(&init_segment(Some(&clip.video), None).unwrap());
        assert_eq!(moov.trak.len(), 1);
        assert_eq!(moov.trak[0].tkhd.track_id, VIDEO_TRACK_ID);
        assert_eq!(moov.mvex.unwrap().trex[0].track_id, VIDEO_TRACK_ID);

        let (_, moov) = parse_init(&init_segment(None, Some(&clip.audio)).unwrap());
        assert_eq!(moov.trak.len(), 1);
        assert_eq!(moov.trak[0].tkhd.track_id, AUDIO_TRACK_ID);
        assert_eq!(moov.trak[0].mdia.hdlr.handler, FourCC::new(b"soun"));
        assert_eq!(moov.mvex.unwrap().trex[0].track_id, AUDIO_TRACK_ID);

        assert_eq!(init_segment(None, None), Err(Fmp4Error::NoTracks));
    }

    #[test]
    fn unreadable_record_is_rebuilt_from_fields() {
        let clip = clip_media();
        let VideoConfig::H264(avc) = &clip.video else {
            panic!("clip is H.264");
        };
        let mut broken = avc.clone();
        // Cut short (into the extension or the PPS): mp4-atom cannot read it back.
        let mut record = avc.record.to_vec();
        record.truncate(record.len() - 3);
        broken.record = Bytes::from(record);
        assert!(Avcc::decode_body(&mut broken.record.as_ref()).is_err());
        let init = init_segment(Some(&VideoConfig::H264(broken)), None).unwrap();
        let body = find_box(&init, b"avcC").unwrap();
        let avcc = Avcc::decode_body(&mut &body[..]).unwrap();
        assert_eq!(avcc.sequence_parameter_sets, [avc.sps[0].to_vec()]);
        assert_eq!(avcc.picture_parameter_sets, [avc.pps[0].to_vec()]);
        assert_eq!(avcc.length_size, avc.nal_length_size);
        assert!(avcc.ext.is_none());
        let (_, moov) = parse_init(&init);
        assert_eq!(moov.trak[0].tkhd.track_id, VIDEO_TRACK_ID);
    }
}
