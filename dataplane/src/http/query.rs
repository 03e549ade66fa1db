//! The query directives of HLS requests.

/// Directives and the playback token of one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives<'a> {
    /// `_HLS_msn`.
    pub(crate) msn: Option<u64>,
    /// `_HLS_part`.
    pub(crate) part: Option<usize>,
    /// `_HLS_skip=YES` (or `v2`).
    pub(crate) skip: bool,
    /// `token`, raw: checked to be of the token alphabet (base64url and `.`, as compact
    /// playback tokens and JWTs are) and at most [`MAX_TOKEN_LEN`] long, since it is
    /// passed on to playlist URIs verbatim.
    pub(crate) token: Option<&'a str>,
}

/// Why a query was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    /// A directive's value is not a number.
    #[error("{name} must be a non-negative integer, got {value:?}")]
    NotANumber {
        /// The directive.
        name: &'static str,
        /// What came.
        value: String,
    },
    /// `_HLS_part` without `_HLS_msn` (RFC 8216bis §6.2.5.2).
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
    /// A token with characters outside `A-Z a-z 0-9 - _ .`, or too long. Its text is not
    /// repeated in the error (it is what the check keeps out of responses).
    #[error("token: expected at most {MAX_TOKEN_LEN} characters of A-Z a-z 0-9 - _ .")]
    BadToken,
}

/// Longest accepted token (a publish JWT is about 200 characters).
pub(crate) const MAX_TOKEN_LEN: usize = 1024;

/// Parses a raw query string. Unknown parameters are ignored (players add cache busters).
///
/// # Errors
/// [`QueryError`] for malformed directive values.
pub(crate) fn parse(query: Option<&str>) -> Result<Directives<'_>, QueryError> {
    let mut d = Directives::default();
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => d.msn = Some(number("_HLS_msn", v)?),
            "_HLS_part" => d.part = Some(number("_HLS_part", v)? as usize),
            "_HLS_skip" => d.skip = v == "YES" || v == "v2",
            "token" if !v.is_empty() => d.token = Some(token(v)?),
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(d)
}

/// A token echoed into playlist URIs must not be able to break out of them (`"`, `,`,
/// newlines, percent-escapes of either): only the base64url alphabet and `.` pass.
pub(crate) fn token(v: &str) -> Result<&str, QueryError> {
    let ok = v.len() <= MAX_TOKEN_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(v) } else { Err(QueryError::BadToken) }
}

fn number(name: &'static str, v: &str) -> Result<u64, QueryError> {
    let bad = || QueryError::NotANumber {
        name,
        value: v.chars().take(32).collect(),
    };
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    v.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        let d = parse(Some(
            "_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&token=abc.def&x=1",
        ))
        .unwrap();
        assert_eq!(
            d,
            Directives {
                msn: Some(12),
                part: Some(3),
                skip: true,
                token: Some("abc.def"),
            }
        );
        assert_eq!(parse(None).unwrap(), Directives::default());
        assert!(!parse(Some("_HLS_skip=NO")).unwrap().skip);
    }

    #[test]
    fn refuses_bad_values() {
        assert!(matches!(
            parse(Some("_HLS_msn=-1")),
            Err(QueryError::NotANumber { .. })
        ));
        assert!(matches!(
            parse(Some("_HLS_msn=99999999999999999999")),
            Err(QueryError::NotANumber { .. })
        ));
        assert_eq!(parse(Some("_HLS_part=1")), Err(QueryError::PartWithoutMsn));
        for bad in ["a%22b", "a\"b", "a,b", "a b", "a+b", "a/b", "a=b"] {
            assert_eq!(
                parse(Some(&format!("token={bad}"))),
                Err(QueryError::BadToken),
                "{bad}"
            );
        }
        let long = format!("token={}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(parse(Some(&long)), Err(QueryError::BadToken));
        let ok = format!("token={}", "a".repeat(MAX_TOKEN_LEN));
        assert!(parse(Some(&ok)).is_ok());
    }
}
