"""What the bundled media servers mask in upstream replies: whole values, chosen by what they are."""

from __future__ import annotations

import json

from media_mcp.common.redact import MASK, redact

KEY = "sab-key-123456"


def test_secret_named_string_values_are_replaced_whole_and_the_result_stays_json() -> None:
    """Keys naming a secret (notification tokens, keys, passwords, apprise URLs) lose their whole value."""
    reply = {
        "pushover_token": "tok-1",
        "pushover_userkey": "user-2",
        "prowl_apikey": "prowl-3",
        "email_pwd": "pw-4",
        "apprise_urls": "discord://1/token-5",
        "apprise_target_failed": "tgram://token-6/1",
        "nscript_parameters": "--token token-7",
    }
    masked = redact(reply, KEY)
    assert masked == dict.fromkeys(reply, MASK)
    assert json.loads(json.dumps(masked)) == masked


def test_flags_numbers_and_empty_values_under_secret_names_stay_visible() -> None:
    """Only non-empty strings are secrets: an enable flag, a priority and an unset password keep their value."""
    reply = {"apprise_target_failed_enable": 1, "pushover_prio_failed": -1, "password": "", "prowl_apikey": None}
    assert redact(reply, KEY) == reply


def test_a_url_carrying_credentials_is_masked_whole_wherever_it_sits() -> None:
    """``scheme://user:pass@host`` and ``scheme://token@host`` anywhere in any string are replaced whole."""
    reply = {
        "socks5_proxy_url": "socks5://bob:hunter2@proxy:1080",
        "warnings": [{"text": "could not reach mailto://alice:pw@example.com"}],
        "hook": "pover://user-token@app-token",
    }
    assert redact(reply, KEY) == {"socks5_proxy_url": MASK, "warnings": [{"text": MASK}], "hook": MASK}


def test_plain_urls_and_ordinary_values_are_left_alone() -> None:
    """A URL without credentials, a file called ``server.key`` and e-mail addresses are not secrets."""
    reply = {"new_rel_url": "https://github.com/sabnzbd/sabnzbd/releases", "https_key": "server.key",
             "email_to": ["alice@example.com"], "selftest_host": "self-test.sabnzbd.org"}  # fmt: skip
    assert redact(reply, KEY) == reply


def test_the_servers_own_secret_is_replaced_inside_any_string() -> None:
    """The configured key is masked where the upstream echoes it, in keys of any name."""
    assert redact({"note": f"key is {KEY}", "list": [KEY]}, KEY) == {"note": f"key is {MASK}", "list": [MASK]}
