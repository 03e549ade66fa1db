//! Fix-ups of str0m's SDP answer text.
//!
//! str0m 0.24 answers an m-line it has no codec for (our audio: WebRTC carries no audio
//! here) with port 0 but an empty format list and its default direction, which browsers
//! refuse to parse (`m=audio 0 UDP/TLS/RTP/SAVPF ` → "Invalid value"). RFC 3264 §6: a
//! rejected stream keeps port 0 and lists at least one of the offered formats. We add the
//! offer's first format and mark the section `a=inactive`.

/// The answer with every rejected m-line made valid (see the module docs).
pub(crate) fn fix_rejected(offer: &str, answer: &str) -> String {
    let offered: Vec<&str> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("m="))
        .map(str::trim_end)
        .collect();
    let mut out = String::with_capacity(answer.len() + 64);
    let mut index = None::<usize>;
    let mut rejected = false;
    for line in answer.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let i = index.map_or(0, |i| i + 1);
            index = Some(i);
            let fields: Vec<&str> = m.split_whitespace().collect();
            rejected = fields.get(1) == Some(&"0");
            if rejected && fields.len() < 4 {
                // media port proto: take the first format the offer listed for it.
                let fmt = offered
                    .get(i)
                    .and_then(|o| o.split_whitespace().nth(3))
                    .unwrap_or("0");
                out.push_str(&format!(
                    "m={} 0 {} {fmt}\r\n",
                    fields[0],
                    fields.get(2).unwrap_or(&"UDP/TLS/RTP/SAVPF")
                ));
                continue;
            }
        } else if rejected && matches!(line, "a=sendonly" | "a=recvonly" | "a=sendrecv") {
            out.push_str("a=inactive\r\n");
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_audio_line_gets_an_offered_format_and_goes_inactive() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:1\r\n";
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\nm=audio 0 UDP/TLS/RTP/SAVPF \r\na=mid:1\r\na=sendonly\r\n";
        assert_eq!(
            fix_rejected(offer, answer),
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=inactive\r\n"
        );
    }

    #[test]
    fn an_accepted_answer_is_unchanged() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n";
        assert_eq!(fix_rejected("m=video 9 X 96\r\n", answer), answer);
    }
}
