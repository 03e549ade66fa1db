//! The three ways out: email over SMTP (`lettre`, tokio + rustls/ring), SMS through an HTTP
//! gateway (Twilio-compatible form POST by default) and signed JSON webhooks. Each send is
//! one attempt; retries, backoff and breakers are the worker's.
//!
//! Webhook signature (docs/notifications.md): `X-Camstream-Timestamp: <unix seconds>` and
//! `X-Camstream-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use sha2::Sha256;

use crate::config::NotifyConfig;

/// How long one attempt may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest error text kept from a receiver's answer.
const MAX_ERROR: usize = 300;

/// `v1=<hex>`: HMAC-SHA256 with `secret` over `"{timestamp}.{body}"`.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + tag.len() * 2);
    out.push_str("v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What one delivery says, rendered from its payload.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    /// Email subject.
    pub(crate) subject: String,
    /// Email text, also the SMS `{message}` line.
    pub(crate) text: String,
    /// Webhook JSON body.
    pub(crate) json: Value,
}

/// The configured senders.
pub(crate) struct Senders {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Option<lettre::message::Mailbox>,
    http: reqwest::Client,
    /// The webhook client: public addresses only unless `private_targets`.
    hooks: reqwest::Client,
    private_targets: bool,
    sms_url: Option<String>,
    sms_auth: Option<String>,
    sms_from: String,
    sms_template: String,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders")
            .field("smtp", &self.smtp.is_some())
            .field("sms_url", &self.sms_url)
            .finish_non_exhaustive()
    }
}

impl Senders {
    /// Builds the senders from the configuration.
    ///
    /// # Errors
    /// An unusable `--smtp-url` or `--smtp-from`.
    pub(crate) fn new(c: &NotifyConfig) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let smtp = match &c.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("--smtp-url: {e}"))?
                    .timeout(Some(SEND_TIMEOUT))
                    .build(),
            ),
            None => None,
        };
        let from = c
            .smtp_from
            .parse()
            .map_err(|e| format!("--smtp-from {:?}: {e}", c.smtp_from))?;
        let builder = || {
            reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
        };
        let http = builder().build().map_err(|e| format!("http client: {e}"))?;
        let mut hooks = builder();
        if !c.private_targets {
            hooks = hooks.dns_resolver(std::sync::Arc::new(super::guard::PublicOnly));
        }
        let hooks = hooks.build().map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            smtp,
            from: Some(from),
            http,
            hooks,
            private_targets: c.private_targets,
            sms_url: c.sms_url.clone(),
            sms_auth: c.sms_auth.clone(),
            sms_from: c.sms_from.clone().unwrap_or_default(),
            sms_template: c.sms_body_template.clone(),
        })
    }

    /// Sends an email.
    pub(crate) async fn email(&self, to: &str, r: &Rendered) -> Result<(), String> {
        let (Some(smtp), Some(from)) = (&self.smtp, &self.from) else {
            return Err("no SMTP server configured (--smtp-url)".into());
        };
        let to: lettre::message::Mailbox =
            to.parse().map_err(|e| format!("bad address {to:?}: {e}"))?;
        let msg = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(r.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(r.text.clone())
            .map_err(|e| format!("building the message: {e}"))?;
        smtp.send(msg)
            .await
            .map(|_| ())
            .map_err(|e| format!("smtp: {e}"))
    }

    /// Sends an SMS through the gateway: a form POST of `To`, `From`, `Body`.
    pub(crate) async fn sms(&self, to: &str, r: &Rendered) -> Result<(), String> {
        let Some(url) = &self.sms_url else {
            return Err("no SMS gateway configured (--sms-url)".into());
        };
        let body = fill_template(&self.sms_template, &r.json);
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("To", to)
            .append_pair("From", &self.sms_from)
            .append_pair("Body", &body)
            .finish();
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        match self.sms_auth.as_deref() {
            Some(a) if a.starts_with("Bearer ") => req = req.header("authorization", a),
            Some(a) => {
                let (user, pass) = a.split_once(':').unwrap_or((a, ""));
                req = req.basic_auth(user, Some(pass));
            }
            None => {}
        }
        answer(req.send().await).await
    }

    /// POSTs the signed JSON to a webhook.
    pub(crate) async fn webhook(
        &self,
        url: &str,
        secret: &str,
        delivery_id: &str,
        now_ms: i64,
        r: &Rendered,
    ) -> Result<(), String> {
        if !self.private_targets
            && let Some(what) = super::guard::internal_literal(url)
        {
            return Err(super::guard::refusal(&what));
        }
        let body = serde_json::to_vec(&r.json).map_err(|e| e.to_string())?;
        let ts = now_ms.div_euclid(1000);
        let sig = webhook_signature(secret.as_bytes(), ts, &body);
        let req = self
            .hooks
            .post(url)
            .header("content-type", "application/json")
            .header("x-camstream-timestamp", ts.to_string())
            .header("x-camstream-signature", sig)
            .header("x-camstream-delivery", delivery_id)
            .body(body);
        answer(req.send().await).await
    }
}

/// A 2xx answer is a delivery; anything else is a failure with the status and some body.
async fn answer(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    let resp = r.map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let mut e = format!("HTTP {}: {text}", status.as_u16());
    if e.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !e.is_char_boundary(cut) {
            cut -= 1;
        }
        e.truncate(cut);
    }
    Err(e)
}

/// Replaces `{name}` with the payload's field `name` (strings as is, others as JSON,
/// missing ones empty); `{{`/`}}` are not special.
pub(crate) fn fill_template(template: &str, payload: &Value) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                match payload.get(&after[..close]) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(v) => out.push_str(&v.to_string()),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_over_timestamp_dot_body() {
        // RFC 4231-style check against an independently computed value (python3 hmac).
        let s = webhook_signature(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(
            s,
            "v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_ne!(s, webhook_signature(b"secret", 1_700_000_001, b"{\"a\":1}"));
    }

    #[test]
    fn template_fills_known_fields() {
        let p = serde_json::json!({"severity": "critical", "kind": "CAMERA_OFFLINE", "n": 3});
        assert_eq!(
            fill_template("[{severity}] {kind} x{n} {missing}{ {", &p),
            "[critical] CAMERA_OFFLINE x3 { {"
        );
    }
}
