//! API clients: log in with a JWT (`POST /api/v1/auth/login` → `accessToken`), then send a
//! weighted mix of read requests at a target rate, and create cameras for publishers whose
//! keys come from the API. The response shapes are read loosely (a field is looked for at
//! any depth) so a `{"success":true,"data":{…}}` envelope or a bare object both work.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::scenario::Api;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The request mix: (route label, weight). `{id}` is a camera id from the first listing.
pub(crate) const MIX: &[(&str, u32)] = &[
    ("GET /api/v1/cameras", 40),
    ("GET /api/v1/cameras/{id}", 20),
    ("GET /api/v1/cameras/{id}/status", 20),
    ("GET /api/v1/auth/me", 10),
    ("GET /api/v1/analytics/dashboard", 10),
];

/// The first string or number found under `key`, at any depth.
pub(crate) fn find_field(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(key) {
                match x {
                    Value::String(s) => return Some(s.clone()),
                    Value::Number(n) => return Some(n.to_string()),
                    _ => {}
                }
            }
            m.values().find_map(|x| find_field(x, key))
        }
        Value::Array(a) => a.iter().find_map(|x| find_field(x, key)),
        _ => None,
    }
}

/// Every string value in `v` that satisfies `keep`.
pub(crate) fn strings(v: &Value, keep: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
    match v {
        Value::String(s) if keep(s) => out.push(s.clone()),
        Value::Object(m) => m.values().for_each(|x| strings(x, keep, out)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, keep, out)),
        _ => {}
    }
}

/// Camera ids of a listing: the `id` of each element of the first array found.
pub(crate) fn camera_ids(v: &Value) -> Vec<String> {
    fn first_array(v: &Value) -> Option<&Vec<Value>> {
        match v {
            Value::Array(a) => Some(a),
            Value::Object(m) => m.values().find_map(first_array),
            _ => None,
        }
    }
    first_array(v)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    c.get("id").and_then(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .or_else(|| Some(x.to_string()))
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Picks routes by weight without randomness: request `n` of the run takes slot `n % 100`.
pub(crate) fn schedule(have_ids: bool) -> Vec<&'static str> {
    MIX.iter()
        .filter(|(r, _)| have_ids || !r.contains("{id}"))
        .flat_map(|(r, w)| std::iter::repeat_n(*r, *w as usize))
        .collect()
}

/// A logged-in API session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) base: String,
    pub(crate) token: String,
    client: reqwest::Client,
}

impl Session {
    /// Logs in.
    ///
    /// # Errors
    /// Says plainly when the server has no API (404/405 on the login route), and passes on
    /// refused credentials and network errors.
    pub(crate) async fn login(
        client: reqwest::Client,
        base: &str,
        api: &Api,
    ) -> anyhow::Result<Self> {
        let url = format!("{base}/api/v1/auth/login");
        let resp = client
            .post(&url)
            .timeout(TIMEOUT)
            .json(&json!({"username": api.username, "password": api.password}))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        if status == 404 || status == 405 {
            bail!(
                "the server has no API: POST /api/v1/auth/login answered {status}. The api scenario needs camstream's control plane (/api/v1, issue 4)"
            );
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "login as {:?} refused with HTTP {status}: {body}",
                api.username
            );
        }
        let token = find_field(&body, "accessToken")
            .ok_or_else(|| anyhow!("login answer has no accessToken: {body}"))?;
        Ok(Self {
            base: base.to_owned(),
            token,
            client,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut rq = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(TIMEOUT)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let resp = rq.send().await?;
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Creates a camera; returns (camera id, RTMP publish URL, playback playlist URLs).
    pub(crate) async fn create_camera(
        &self,
        run: u64,
        i: u32,
    ) -> anyhow::Result<(String, String, Vec<String>)> {
        let body = json!({
            "name": format!("bench {i}"),
            "company": "camstream-bench",
            "model": "testsrc2",
            "serialNumber": format!("bench-{run}-{i}"),
            "location": "bench",
            "place": "bench",
        });
        let (status, v) = self
            .send(reqwest::Method::POST, "/api/v1/cameras", Some(body))
            .await?;
        if !(200..300).contains(&status) {
            bail!("creating camera {i} answered HTTP {status}: {v}");
        }
        let id = find_field(&v, "id").ok_or_else(|| anyhow!("created camera has no id: {v}"))?;
        let rtmp = find_field(&v, "rtmpUrl")
            .ok_or_else(|| anyhow!("created camera has no rtmpUrl: {v}"))?;
        let (status, hls) = self
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/cameras/{id}/stream/hls"),
                None,
            )
            .await?;
        if status != 200 {
            bail!("playback URLs of camera {id} answered HTTP {status}: {hls}");
        }
        let mut urls = Vec::new();
        strings(&hls, &|s| s.contains(".m3u8"), &mut urls);
        Ok((id, rtmp, urls))
    }
}

/// Sends the request mix at `rate_per_s / clients` per client until `stop`.
pub(crate) async fn load(
    session: Arc<Session>,
    api: Api,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let ids = match session
        .send(reqwest::Method::GET, "/api/v1/cameras", None)
        .await
    {
        Ok((200, v)) => camera_ids(&v),
        _ => Vec::new(),
    };
    let ids = Arc::new(ids);
    let plan = Arc::new(schedule(!ids.is_empty()));
    let period = Duration::from_secs_f64(f64::from(api.clients) / api.rate_per_s);
    let mut set = tokio::task::JoinSet::new();
    for c in 0..api.clients {
        let (session, metrics, stop, ids, plan) = (
            session.clone(),
            metrics.clone(),
            stop.clone(),
            ids.clone(),
            plan.clone(),
        );
        set.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = c as usize;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let route = plan[n % plan.len()];
                let id = if ids.is_empty() {
                    String::new()
                } else {
                    ids[n % ids.len()].clone()
                };
                n += api.clients as usize;
                let path = route.trim_start_matches("GET ").replace("{id}", &id);
                let t0 = metrics.clock.now_us();
                let r = session.send(reqwest::Method::GET, &path, None).await;
                let dt = metrics.clock.now_us() - t0;
                Metrics::add(&metrics.api_requests, 1);
                match r {
                    Ok((s, _)) if (200..300).contains(&s) => metrics.api_record(route, dt),
                    Ok((s, _)) => {
                        Metrics::add(&metrics.api_errors, 1);
                        metrics.error(format!("api {route}: http {s}"));
                    }
                    Err(_) => {
                        Metrics::add(&metrics.api_errors, 1);
                        metrics.error(format!("api {route}: request failed"));
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loose_response_shapes() {
        let v = json!({"success": true, "data": {"accessToken": "abc", "user": {"id": 7}}});
        assert_eq!(find_field(&v, "accessToken").as_deref(), Some("abc"));
        assert_eq!(find_field(&v, "id").as_deref(), Some("7"));
        assert_eq!(find_field(&v, "nope"), None);
        let list = json!({"success": true, "data": [{"id": "a"}, {"id": "b"}, {"name": "no id"}], "page": 1});
        assert_eq!(camera_ids(&list), vec!["a", "b"]);
        let mut urls = Vec::new();
        strings(
            &json!({"llhls": "http://x/hls/c/playlist.m3u8?token=t", "ts": "http://x/hls/c/ts/playlist.m3u8", "exp": "soon"}),
            &|s| s.contains(".m3u8"),
            &mut urls,
        );
        assert_eq!(urls.len(), 2);
    }

    #[test]
    fn schedule_follows_weights_and_skips_id_routes_without_ids() {
        let all = schedule(true);
        assert_eq!(all.len(), 100);
        assert_eq!(
            all.iter().filter(|r| **r == "GET /api/v1/cameras").count(),
            40
        );
        let no_ids = schedule(false);
        assert!(no_ids.iter().all(|r| !r.contains("{id}")));
        assert_eq!(no_ids.len(), 60);
    }
}
