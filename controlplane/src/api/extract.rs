//! Our own `Json`, `Query` and `Path` extractors and the success envelope. Rejections come
//! out in the error envelope: malformed JSON or a bad field → 400 `VALIDATION_FAILED` naming
//! the field (via `serde_path_to_error`), a body over the limit → 413 `PAYLOAD_TOO_LARGE`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body.
#[derive(Debug)]
pub(crate) struct Json<T>(pub(crate) T);

/// The field a serde error is about: the path when it has one, else the name in
/// "missing field `x`" / "unknown field `x`".
fn field_of(path: &serde_path_to_error::Path, message: &str) -> String {
    let p = path.to_string();
    // `?` is serde_path_to_error's segment for "not inside any known key" (syntax errors).
    let p = if p == "?" { ".".to_owned() } else { p };
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"));
    match named {
        Some(n) if p == "." => n.to_owned(),
        // Unknown fields already end the path; missing ones do not.
        Some(n) if p == n || p.ends_with(&format!(".{n}")) => p,
        Some(n) => format!("{p}.{n}"),
        None if p == "." => "body".to_owned(),
        None => p,
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::validation(
                "Content-Type",
                "expected application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
                } else {
                    ApiError::validation("body", rejection.body_text())
                }
            })?;
        // Every request body is a JSON object; serde would also build a struct from an
        // array (`[1, 2]` fills the fields in order), which the schema does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::validation("body", "expected a JSON object"));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(Json(v)),
            Err(e) => {
                let message = e.inner().to_string();
                let field = field_of(e.path(), &message);
                Err(ApiError::validation(&field, message))
            }
        }
    }
}

/// Query parameters.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(Query(v)),
            Err(e) => {
                let message = e.inner().to_string();
                let field = field_of(e.path(), &message);
                Err(ApiError::validation(&field, message))
            }
        }
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// One path parameter (an id). Ids that cannot exist are refused by the handlers as "not
/// found"; a parameter with a control character (which no id or file name has, and which
/// PostgreSQL cannot even compare: NUL) is refused here with 400.
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await
            && let Some((name, _)) = raw
                .iter()
                .find(|(_, value)| value.chars().any(char::is_control))
        {
            return Err(ApiError::validation(
                name,
                "must not contain control characters",
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| ApiError::validation("path", r.body_text()))
    }
}

/// A success body: `{"success":true,"data":...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Envelope<T> {
    /// Always `true`.
    pub(crate) success: bool,
    /// The payload.
    pub(crate) data: T,
}

/// A page of a list: `{"success":true,"data":[...],"pagination":{...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Paged<T> {
    /// Always `true`.
    pub(crate) success: bool,
    /// The items.
    pub(crate) data: Vec<T>,
    /// Where this page is.
    pub(crate) pagination: Pagination,
}

/// Page position.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pagination {
    /// 1-based page.
    pub(crate) page: i64,
    /// Page size.
    pub(crate) limit: i64,
    /// Items matching.
    pub(crate) total: i64,
    /// Pages.
    pub(crate) total_pages: i64,
}

/// Wraps `data` in the success envelope.
pub(crate) fn ok<T: Serialize>(data: T) -> axum::Json<Envelope<T>> {
    axum::Json(Envelope {
        success: true,
        data,
    })
}

/// A page in the success envelope.
pub(crate) fn paged<T: Serialize>(data: Vec<T>, page: i64, limit: i64, total: i64) -> Response {
    let total_pages = if limit > 0 {
        (total + limit - 1) / limit
    } else {
        0
    };
    axum::Json(Paged {
        success: true,
        data,
        pagination: Pagination {
            page,
            limit,
            total,
            total_pages,
        },
    })
    .into_response()
}

/// Page parameters shared by list routes: `page` (1-based, default 1) and `limit`
/// (default 20, 1–100).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageParams {
    pub(crate) page: i64,
    pub(crate) limit: i64,
}

impl PageParams {
    pub(crate) const MAX_LIMIT: i64 = 100;

    /// Validates raw values.
    pub(crate) fn new(page: Option<i64>, limit: Option<i64>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(20);
        if !(1..=1_000_000).contains(&page) {
            return Err(ApiError::validation(
                "page",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation("limit", "must be between 1 and 100"));
        }
        Ok(Self { page, limit })
    }

    pub(crate) fn offset(self) -> i64 {
        (self.page - 1) * self.limit
    }
}

/// Checks a text field: trimmed length within `1..=max` (or empty allowed when optional)
/// and no control characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if value.trim().is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if n > max {
        return Err(
            ApiError::validation(field, format!("must be at most {max} characters"))
                .with_details(serde_json::json!({
                    "fields": [{ "field": field, "message": format!("must be at most {max} characters") }],
                    "maxLength": max,
                })),
        );
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_from_serde_errors() {
        #[derive(serde::Deserialize, Debug)]
        #[expect(
            dead_code,
            reason = "only deserialized: the fields shape the errors under test"
        )]
        struct Inner {
            n: u32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[expect(
            dead_code,
            reason = "only deserialized: the fields shape the errors under test"
        )]
        #[serde(deny_unknown_fields)]
        struct Outer {
            name: String,
            inner: Option<Inner>,
        }
        let cases = [
            (r#"{"inner":null}"#, "name"),
            (r#"{"name":5}"#, "name"),
            (r#"{"name":"a","inner":{"n":"x"}}"#, "inner.n"),
            (r#"{"name":"a","inner":{}}"#, "inner.n"),
            (r#"{"name":"a","bogus":1}"#, "bogus"),
            (r#"{"name":"#, "name"),
            (r#"{not json"#, "body"),
        ];
        for (json, want) in cases {
            let de = &mut serde_json::Deserializer::from_str(json);
            let e = serde_path_to_error::deserialize::<_, Outer>(de).unwrap_err();
            assert_eq!(field_of(e.path(), &e.inner().to_string()), want, "{json}");
        }
    }

    /// serde builds a struct from an array too; the schema says object, so does the server.
    #[tokio::test]
    async fn body_must_be_an_object() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            a: Option<u32>,
            b: Option<u32>,
        }
        let req = |body: &'static str| {
            Request::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        for bad in ["[null, null]", " [1]", "null", "1", "\"a\""] {
            let e = Json::<Body>::from_request(req(bad), &()).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
        }
        let ok = Json::<Body>::from_request(req(" {\"a\": 1}"), &())
            .await
            .unwrap();
        assert_eq!(ok.0.a, Some(1));
    }
}
