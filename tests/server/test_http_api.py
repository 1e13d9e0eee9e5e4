"""The HTTP side against a real server process and a real redis-server."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from server.local_redis import LocalRedis

KEY = {"Authorization": "Bearer test-key"}
CANARY_A = "Zebracanary Quill"
CANARY_B = "Marmotcanary Fern"


def create(base: str, **extra: object) -> dict:
    body = {"partners": {"a": {"name": CANARY_A, "color": "#c2410c"},
                         "b": {"name": CANARY_B, "color": "#0f766e"}}, **extra}
    response = httpx.post(f"{base}/api/rooms", json=body, headers=KEY)
    assert response.status_code == 201, response.text
    return response.json()


def secret_of(link: str) -> str:
    return link.split("#", 1)[1]


def bearer(link: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret_of(link)}"}


def room_keys(url: str, room: str) -> list[bytes]:
    with redis.Redis.from_url(url) as client:
        return list(client.scan_iter(match=f"*{room}*"))


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_create_needs_the_practice_key(server) -> None:
    body = {"partners": {"a": {"name": "A"}, "b": {"name": "B"}}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(f"{server.base_url}/api/rooms", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"


def test_create_returns_three_links_with_secrets_in_the_fragment(server, redis_url) -> None:
    created = create(server.base_url)
    room = created["room"]
    assert len(room) >= 22  # 128 bits, url-safe base64
    links = created["links"]
    assert set(links) == {"therapist", "a", "b"}
    secrets = {secret_of(link) for link in links.values()}
    assert len(secrets) == 3 and all(len(s) >= 43 for s in secrets)  # 256 bits
    for link in links.values():
        assert link.startswith(f"{server.base_url}/r/{room}#")
    with redis.Redis.from_url(redis_url) as client:
        stored = b"".join(
            b"".join(f + v for f, v in client.hgetall(key).items())
            if client.type(key) == b"hash" else b""
            for key in client.scan_iter(match=f"*{room}*")
        )
    for secret in secrets:
        assert secret.encode() not in stored, "only hashes of secrets are stored"


def test_bad_bodies_are_refused_with_codes(server) -> None:
    url = f"{server.base_url}/api/rooms"
    cases = [
        (b"not json", "bad_request", "body"),
        (b'{"partners": {"a": {"name": "A"}}}', "bad_request", "partners"),
        (b'{"partners": 7}', "bad_request", "partners"),
        (b'{"zzz": 1}', "bad_request", None),
    ]
    for raw, code, field in cases:
        response = httpx.post(url, content=raw, headers=KEY)
        assert response.status_code == 400, raw
        assert response.json()["code"] == code
        if field:
            assert response.json()["field"] == field
    long_name = {"partners": {"a": {"name": "x" * 500}, "b": {"name": "B"}}}
    response = httpx.post(url, json=long_name, headers=KEY)
    assert response.json()["code"] == "limit"
    assert "x" * 50 not in response.text


def test_development_mode_creates_without_a_key_and_says_so(server_factory) -> None:
    dev = server_factory({"PARTSBOARD_THERAPIST_KEY": None})
    body = {"partners": {"a": {"name": "A"}, "b": {"name": "B"}}}
    assert httpx.post(f"{dev.base_url}/api/rooms", json=body).status_code == 201
    assert "DEVELOPMENT MODE" in dev.log_text()


def test_health_ready_metrics_and_headers(server) -> None:
    create(server.base_url)
    assert httpx.get(f"{server.base_url}/healthz").json() == {"ok": True}
    assert httpx.get(f"{server.base_url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert "partsboard_rooms_created_total" in metrics
    assert CANARY_A not in metrics and CANARY_B not in metrics
    page = httpx.get(f"{server.base_url}/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


def test_wrong_and_ended_rooms_get_the_same_page(server) -> None:
    created = create(server.base_url)
    room = created["room"]
    live = httpx.get(f"{server.base_url}/r/{room}")
    assert live.status_code == 200
    assert CANARY_A not in live.text  # names travel over the websocket, never in the page
    never = httpx.get(f"{server.base_url}/r/{'x' * 22}")
    end = httpx.post(f"{server.base_url}/api/rooms/{room}/end", json={"confirm": True},
                     headers=bearer(created["links"]["therapist"]))
    assert end.status_code == 204
    ended = httpx.get(f"{server.base_url}/r/{room}")
    assert never.status_code == ended.status_code == 404
    assert never.text == ended.text


def test_end_needs_the_therapist_and_a_confirm_then_deletes_every_key(server, redis_url) -> None:
    created = create(server.base_url)
    room, links = created["room"], created["links"]
    url = f"{server.base_url}/api/rooms/{room}/end"
    assert httpx.post(url, json={"confirm": True}, headers=bearer(links["a"])).status_code == 403
    refused = httpx.post(url, json={}, headers=bearer(links["therapist"]))
    assert refused.status_code == 400 and refused.json()["field"] == "confirm"
    assert httpx.post(url, json={"confirm": True}, headers={"Authorization": "Bearer nope"}
                      ).status_code == 404
    assert room_keys(redis_url, room), "the room exists before it ends"
    assert httpx.post(url, json={"confirm": True},
                      headers=bearer(links["therapist"])).status_code == 204
    assert room_keys(redis_url, room) == []
    again = httpx.post(url, json={"confirm": True}, headers=bearer(links["therapist"]))
    assert again.status_code == 404 and again.json()["code"] == "room_ended"


def test_every_room_key_has_a_ttl_within_the_idle_time_out(server, redis_url) -> None:
    room = create(server.base_url)["room"]
    with redis.Redis.from_url(redis_url) as client:
        keys = room_keys(redis_url, room)
        assert keys
        for key in keys:
            assert 0 < client.pttl(key) <= 3 * 3600 * 1000


def test_idle_rooms_vanish_on_their_own(server_factory, redis_url) -> None:
    short = server_factory({"PARTSBOARD_IDLE_TTL": "1"})
    room = create(short.base_url)["room"]
    assert room_keys(redis_url, room)
    assert wait_until(lambda: not room_keys(redis_url, room))
    assert httpx.get(f"{short.base_url}/r/{room}").status_code == 404


def test_the_hard_lifetime_caps_the_idle_time_out(server_factory, redis_url) -> None:
    short = server_factory({"PARTSBOARD_IDLE_TTL": "3600", "PARTSBOARD_MAX_LIFETIME": "1"})
    room = create(short.base_url)["room"]
    with redis.Redis.from_url(redis_url) as client:
        assert all(client.pttl(k) <= 1000 for k in room_keys(redis_url, room))
    assert wait_until(lambda: not room_keys(redis_url, room))


def test_replacing_a_link_retires_the_old_secret(server) -> None:
    created = create(server.base_url)
    room, links = created["room"], created["links"]
    base = f"{server.base_url}/api/rooms/{room}"
    assert httpx.post(f"{base}/links/a", headers=bearer(links["b"])).status_code == 403
    assert httpx.post(f"{base}/links/therapist",
                      headers=bearer(links["therapist"])).status_code == 400
    response = httpx.post(f"{base}/links/a", headers=bearer(links["therapist"]))
    assert response.status_code == 200
    new_link = response.json()["link"]
    assert secret_of(new_link) != secret_of(links["a"])
    old = httpx.post(f"{base}/export?format=json", headers=bearer(links["a"]))
    assert old.status_code == 404 and old.json()["code"] == "room_ended"
    assert httpx.post(f"{base}/export?format=json", headers=bearer(new_link)).status_code == 200


@pytest.mark.parametrize("role", ["therapist", "a", "b"])
def test_exports_are_downloads_without_names_or_caching(server, role) -> None:
    created = create(server.base_url)
    base = f"{server.base_url}/api/rooms/{created['room']}/export"
    kinds = {"json": "application/json", "md": "text/markdown", "html": "text/html"}
    for fmt, kind in kinds.items():
        response = httpx.post(f"{base}?format={fmt}", headers=bearer(created["links"][role]))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["cache-control"] == "no-store"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert CANARY_A.split()[0] not in disposition and CANARY_B.split()[0] not in disposition
    bad = httpx.post(f"{base}?format=exe", headers=bearer(created["links"][role]))
    assert bad.status_code == 400 and bad.json()["field"] == "format"


def test_continue_from_a_therapist_export(server) -> None:
    created = create(server.base_url)
    export = httpx.post(f"{server.base_url}/api/rooms/{created['room']}/export?format=json",
                        headers=bearer(created["links"]["therapist"])).json()
    response = httpx.post(f"{server.base_url}/api/rooms", json={"continue_from": export},
                          headers=KEY)
    assert response.status_code == 201, response.text
    assert response.json()["room"] != created["room"]
    tampered = dict(export, partners={"a": {"name": "Changed", "color": "#000000"},
                                      "b": export["partners"]["b"]})
    refused = httpx.post(f"{server.base_url}/api/rooms", json={"continue_from": tampered},
                         headers=KEY)
    assert refused.status_code == 400 and refused.json()["field"] == "continue_from"
    partner_export = httpx.post(
        f"{server.base_url}/api/rooms/{created['room']}/export?format=json",
        headers=bearer(created["links"]["a"])).json()
    refused = httpx.post(f"{server.base_url}/api/rooms", json={"continue_from": partner_export},
                         headers=KEY)
    assert refused.status_code == 400


def test_readyz_tells_when_redis_is_away(server_factory) -> None:
    with LocalRedis() as own:
        srv = server_factory({"REDIS_URL": own.url})
        assert httpx.get(f"{srv.base_url}/readyz").status_code == 200
        own.kill()
        away = httpx.get(f"{srv.base_url}/readyz", timeout=10)
        assert away.status_code == 503 and away.json()["redis"] == "unreachable"
        assert httpx.get(f"{srv.base_url}/healthz").status_code == 200
        own.start()
        assert wait_until(lambda: httpx.get(f"{srv.base_url}/readyz").status_code == 200)
