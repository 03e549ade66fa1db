//! `camstream serve` flags of notification delivery (docs/notifications.md), resolved into
//! the control plane's `NotifyConfig`. Flags and `CAMSTREAM_*` env only (not the config
//! file).

use anyhow::bail;
use clap::Args;

use crate::config::duration;

/// Notification flags.
#[derive(Debug, Default, Args)]
pub(crate) struct NotifyArgs {
    /// SMTP server for email notifications: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or `smtps://user:pass@host`
    /// (implicit TLS). Default: none (email deliveries fail and end as dead letters).
    #[arg(long, env = "CAMSTREAM_SMTP_URL")]
    pub(crate) smtp_url: Option<String>,
    /// Sender address of notification email. Default camstream@localhost.
    #[arg(long, env = "CAMSTREAM_SMTP_FROM")]
    pub(crate) smtp_from: Option<String>,
    /// SMS gateway URL (a Twilio-compatible form POST of To, From, Body). Default: none.
    #[arg(long, env = "CAMSTREAM_SMS_URL")]
    pub(crate) sms_url: Option<String>,
    /// SMS gateway credentials: `user:password` (HTTP basic) or `Bearer <token>`.
    #[arg(long, env = "CAMSTREAM_SMS_AUTH")]
    pub(crate) sms_auth: Option<String>,
    /// SMS sender number (`From`).
    #[arg(long, env = "CAMSTREAM_SMS_FROM")]
    pub(crate) sms_from: Option<String>,
    /// SMS body with {severity} {kind} {event} {message} {cameraId} {company} {alertId} {at}.
    /// Default "camstream {severity} {kind} {event}: {message}".
    #[arg(long, env = "CAMSTREAM_SMS_BODY_TEMPLATE")]
    pub(crate) sms_body_template: Option<String>,
    /// Attempts before a notification becomes a dead letter. Default 8.
    #[arg(long, env = "CAMSTREAM_NOTIFY_MAX_ATTEMPTS")]
    pub(crate) notify_max_attempts: Option<u32>,
    /// First retry delay ceiling (doubles per attempt, full jitter). Default 2s.
    #[arg(long, env = "CAMSTREAM_NOTIFY_BACKOFF_BASE")]
    pub(crate) notify_backoff_base: Option<String>,
    /// Largest retry delay. Default 10m.
    #[arg(long, env = "CAMSTREAM_NOTIFY_BACKOFF_MAX")]
    pub(crate) notify_backoff_max: Option<String>,
    /// Consecutive failures that open a destination's circuit breaker. Default 5.
    #[arg(long, env = "CAMSTREAM_NOTIFY_BREAKER_FAILURES")]
    pub(crate) notify_breaker_failures: Option<u32>,
    /// How long an open breaker waits before one probe. Default 60s.
    #[arg(long, env = "CAMSTREAM_NOTIFY_BREAKER_COOLDOWN")]
    pub(crate) notify_breaker_cooldown: Option<String>,
    /// How often alert events are read and due notifications sent. Default 1s.
    #[arg(long, env = "CAMSTREAM_NOTIFY_POLL")]
    pub(crate) notify_poll: Option<String>,
    /// Lease of a notification being sent (a node that dies mid-send loses it after this).
    /// Default 60s.
    #[arg(long, env = "CAMSTREAM_NOTIFY_LEASE")]
    pub(crate) notify_lease: Option<String>,
    /// How long sent and dead notifications are kept, at least 24h. Default 720h (30 days).
    #[arg(long, env = "CAMSTREAM_NOTIFY_RETENTION")]
    pub(crate) notify_retention: Option<String>,
    /// Let webhooks target loopback, private and link-local addresses (internal receivers).
    /// Default off: webhook URLs, which tenant operators choose, reach only public
    /// addresses.
    #[arg(long, env = "CAMSTREAM_NOTIFY_PRIVATE_TARGETS")]
    pub(crate) notify_private_targets: bool,
}

impl NotifyArgs {
    /// Applies the flags given to `c`.
    pub(crate) fn apply(self, c: &mut camstream_controlplane::NotifyConfig) -> anyhow::Result<()> {
        c.smtp_url = self.smtp_url.or(c.smtp_url.take());
        if let Some(u) = &c.smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            bail!("smtp-url: expected smtp://host:port or smtps://user:pass@host, got {u:?}");
        }
        if let Some(f) = self.smtp_from {
            c.smtp_from = f;
        }
        c.private_targets |= self.notify_private_targets;
        c.sms_url = self.sms_url.or(c.sms_url.take());
        c.sms_auth = self.sms_auth.or(c.sms_auth.take());
        c.sms_from = self.sms_from.or(c.sms_from.take());
        if let Some(t) = self.sms_body_template {
            c.sms_body_template = t;
        }
        if let Some(n) = self.notify_max_attempts {
            if n == 0 {
                bail!("notify-max-attempts must be at least 1");
            }
            c.max_attempts = n;
        }
        if let Some(n) = self.notify_breaker_failures {
            if n == 0 {
                bail!("notify-breaker-failures must be at least 1");
            }
            c.breaker_failures = n;
        }
        for (flag, v, slot) in [
            (
                "notify-backoff-base",
                self.notify_backoff_base,
                &mut c.backoff_base,
            ),
            (
                "notify-backoff-max",
                self.notify_backoff_max,
                &mut c.backoff_max,
            ),
            (
                "notify-breaker-cooldown",
                self.notify_breaker_cooldown,
                &mut c.breaker_cooldown,
            ),
            ("notify-poll", self.notify_poll, &mut c.poll),
            ("notify-lease", self.notify_lease, &mut c.lease),
            ("notify-retention", self.notify_retention, &mut c.retention),
        ] {
            if let Some(v) = v {
                let d = duration(flag, &v)?;
                if d.is_zero() {
                    bail!("{flag} must be above zero");
                }
                *slot = d;
            }
        }
        if c.retention < std::time::Duration::from_secs(86_400) {
            bail!("notify-retention must be at least 24h (longer than any outbox re-read)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn flags_apply_and_bad_values_are_refused() {
        let mut c = camstream_controlplane::NotifyConfig::default();
        NotifyArgs {
            smtp_url: Some("smtps://u:p@mail.example.test".into()),
            sms_url: Some("https://sms.example.test/send".into()),
            sms_auth: Some("Bearer t0ken".into()),
            notify_max_attempts: Some(3),
            notify_backoff_base: Some("500ms".into()),
            notify_breaker_cooldown: Some("2m".into()),
            ..NotifyArgs::default()
        }
        .apply(&mut c)
        .unwrap();
        assert_eq!(c.smtp_url.as_deref(), Some("smtps://u:p@mail.example.test"));
        assert_eq!(c.sms_auth.as_deref(), Some("Bearer t0ken"));
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.backoff_base, Duration::from_millis(500));
        assert_eq!(c.breaker_cooldown, Duration::from_secs(120));
        assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
        for bad in [
            NotifyArgs {
                smtp_url: Some("http://mail".into()),
                ..NotifyArgs::default()
            },
            NotifyArgs {
                notify_max_attempts: Some(0),
                ..NotifyArgs::default()
            },
            NotifyArgs {
                notify_poll: Some("0s".into()),
                ..NotifyArgs::default()
            },
            NotifyArgs {
                notify_retention: Some("1h".into()),
                ..NotifyArgs::default()
            },
        ] {
            let mut c = camstream_controlplane::NotifyConfig::default();
            assert!(bad.apply(&mut c).is_err());
        }
    }
}
