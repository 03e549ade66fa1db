//! `/api/v1/layouts` in process: a user's grid layouts (create, list, read, replace,
//! delete), one default per user, a tile's playback choice, every rule a layout must keep
//! (refused with 400 and the field), the per-user cap (409), and isolation: another user,
//! admins included, gets 404 and cannot put a camera they cannot see into a tile.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Resp, TestApp};

fn field_error(r: &Resp, field: &str, what: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.json);
    assert_eq!(r.code(), "VALIDATION_FAILED", "{what}: {}", r.json);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{field}:")),
        "{what}: {message}"
    );
}

fn layout(name: &str, tiles: Value, default: bool) -> Value {
    json!({ "name": name, "columns": 2, "rows": 2, "tiles": tiles, "isDefault": default })
}

#[tokio::test]
async fn a_users_layouts_keep_their_rules_and_stay_theirs() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (op, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (viewer, _) = app
        .user(&admin, "acme-viewer", "viewer", Some("acme"))
        .await;
    let (other, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let gate = app.camera(&op, "Gate", "L-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let door = app.camera(&op, "Door", "L-2", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = app.camera(&other, "Theirs", "L-3", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Create two; the second becomes the default and the first loses the flag.
    let first = app
        .call(
            "POST",
            "/api/v1/layouts",
            Some(&op),
            Some(layout(
                "Yard",
                json!([{ "cameraId": door, "position": 3 }, { "cameraId": gate, "position": 0 }]),
                true,
            )),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    let d = &first.json["data"];
    assert_eq!(
        (d["columns"].clone(), d["rows"].clone()),
        (json!(2), json!(2))
    );
    // Tiles come back in slot order.
    assert_eq!(
        d["tiles"],
        json!([{ "cameraId": gate, "position": 0 }, { "cameraId": door, "position": 3 }])
    );
    assert_eq!(d["isDefault"], true);
    let first_id = d["id"].as_str().unwrap().to_owned();
    let second = app
        .call(
            "POST",
            "/api/v1/layouts",
            Some(&op),
            Some(layout(
                "Night",
                json!([{ "cameraId": gate, "position": 1 }]),
                true,
            )),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.json);
    let second_id = second.json["data"]["id"].as_str().unwrap().to_owned();
    let list = app.call("GET", "/api/v1/layouts", Some(&op), None).await;
    assert_eq!(list.status, StatusCode::OK);
    let defaults: Vec<(&str, bool)> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["isDefault"] == true))
        .collect();
    assert_eq!(defaults, [("Yard", false), ("Night", true)]);

    // Replace: a 3x3 grid, the first the default again.
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/layouts/{first_id}"),
            Some(&op),
            Some(json!({
                "name": "Yard 3x3", "columns": 3, "rows": 3, "isDefault": true,
                "tiles": [{ "cameraId": door, "position": 8, "playback": "webrtc" }]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"]["columns"], 3);
    // A tile's playback choice (the dashboard's LL-HLS / WebRTC switch) is kept.
    assert_eq!(
        r.json["data"]["tiles"],
        json!([{ "cameraId": door, "position": 8, "playback": "webrtc" }])
    );
    let r = app
        .call(
            "GET",
            &format!("/api/v1/layouts/{second_id}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.json["data"]["isDefault"], false, "{}", r.json);

    // The rules.
    let cases: [(Value, &str, &str); 8] = [
        (layout(" ", json!([]), false), "name", "blank name"),
        (
            json!({ "name": "x", "columns": 9, "rows": 1, "tiles": [] }),
            "columns",
            "9 columns",
        ),
        (
            json!({ "name": "x", "columns": 1, "rows": 0, "tiles": [] }),
            "rows",
            "0 rows",
        ),
        (
            layout("x", json!([{ "cameraId": gate, "position": 4 }]), false),
            "tiles[0].position",
            "a slot outside the grid",
        ),
        (
            layout(
                "x",
                json!([{ "cameraId": gate, "position": 1 }, { "cameraId": door, "position": 1 }]),
                false,
            ),
            "tiles[1].position",
            "a slot used twice",
        ),
        (
            layout(
                "x",
                json!([{ "cameraId": gate, "position": 1 }, { "cameraId": gate, "position": 2 }]),
                false,
            ),
            "tiles[1].cameraId",
            "a camera twice",
        ),
        (
            layout("x", json!([{ "cameraId": theirs, "position": 0 }]), false),
            "tiles[0].cameraId",
            "another tenant's camera",
        ),
        (
            json!({ "name": "x", "columns": 1, "rows": 1, "tiles": [
                { "cameraId": gate, "position": 0 }, { "cameraId": door, "position": 0 }
            ] }),
            "tiles",
            "more tiles than slots",
        ),
    ];
    for (body, field, what) in cases {
        let r = app
            .call("POST", "/api/v1/layouts", Some(&op), Some(body.clone()))
            .await;
        field_error(&r, field, what);
        let r = app
            .call(
                "PUT",
                &format!("/api/v1/layouts/{first_id}"),
                Some(&op),
                Some(body),
            )
            .await;
        field_error(&r, field, what);
    }
    let r = app
        .call(
            "POST",
            "/api/v1/layouts",
            Some(&op),
            Some(json!({ "name": "x", "columns": 1, "rows": 1, "tiles": [], "extra": 1 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    let r = app
        .call(
            "POST",
            "/api/v1/layouts",
            Some(&op),
            Some(layout(
                "x",
                json!([{ "cameraId": gate, "position": 0, "playback": "rtsp" }]),
                false,
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);

    // Another user, an admin included, sees none of them and changes none.
    for who in [&other, &admin, &viewer] {
        let r = app.call("GET", "/api/v1/layouts", Some(who), None).await;
        assert_eq!(r.json["data"], json!([]), "{}", r.json);
        for (method, body) in [
            ("GET", None),
            ("PUT", Some(layout("stolen", json!([]), false))),
            ("DELETE", None),
        ] {
            let r = app
                .call(
                    method,
                    &format!("/api/v1/layouts/{first_id}"),
                    Some(who),
                    body,
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.json);
            assert_eq!(r.code(), "LAYOUT_NOT_FOUND");
        }
    }
    // A viewer has layouts of its own with the cameras it can see.
    let r = app
        .call(
            "POST",
            "/api/v1/layouts",
            Some(&viewer),
            Some(layout(
                "Mine",
                json!([{ "cameraId": gate, "position": 0 }]),
                true,
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);

    // Delete; then it is gone.
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/layouts/{second_id}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = app
        .call(
            "GET",
            &format!("/api/v1/layouts/{second_id}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call("GET", "/api/v1/layouts/not-a-uuid", Some(&op), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_layout_quota_is_a_conflict() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let body = json!({ "name": "q", "columns": 1, "rows": 1, "tiles": [] });
    for i in 0..50 {
        let r = app
            .call("POST", "/api/v1/layouts", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "layout {i}: {}", r.json);
    }
    let r = app
        .call("POST", "/api/v1/layouts", Some(&admin), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.code(), "LAYOUT_LIMIT_REACHED");
    assert_eq!(r.json["error"]["details"]["limit"], 50);
}
