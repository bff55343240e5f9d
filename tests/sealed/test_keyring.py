"""KeyRing: keys as bytes or URL-safe base64, the first seals, every one opens; never
shown in a repr, an error or a pickle; from the environment or a file; and
cryptography imported only when a ring is made (the ``sealed`` extra)."""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from sharedctx import InvalidArgumentError, KeyProvider, KeyRing


def test_a_generated_key_is_32_random_bytes_in_url_safe_base64() -> None:
    first, second = KeyRing.generate_key(), KeyRing.generate_key()
    assert first != second
    assert len(base64.urlsafe_b64decode(first)) == 32
    ring = KeyRing({"a": first, "b": base64.urlsafe_b64decode(second), "c": first.rstrip("=")})
    assert ring.key_id == "a"
    assert ring.key_ids == ("a", "b", "c")
    assert isinstance(ring, KeyProvider)


def test_the_first_key_wraps_and_every_key_unwraps_what_it_wrapped() -> None:
    old_key = KeyRing.generate_key()
    old = KeyRing({"old": old_key})
    key_id, wrapped = old.wrap(b"k" * 32, b"context")
    assert key_id == "old"
    both = KeyRing({"new": KeyRing.generate_key(), "old": old_key})
    assert both.wrap(b"k" * 32, b"context")[0] == "new"
    assert both.unwrap("old", wrapped, b"context") == b"k" * 32
    with pytest.raises(ValueError, match="does not open"):
        both.unwrap("old", wrapped, b"another session")
    flipped = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(ValueError, match="does not open"):
        both.unwrap("old", flipped, b"context")


def test_a_ring_never_shows_a_key() -> None:
    key = KeyRing.generate_key()
    raw = base64.urlsafe_b64decode(key)
    ring = KeyRing({"2026-12": key})
    for shown in (repr(ring), str(ring)):
        assert shown == "KeyRing(['2026-12'])"
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(ring)
    for bad in ({"x": key[:-8]}, {"x": raw[:31]}, {"x": "not base64 at all!!"}):
        with pytest.raises(InvalidArgumentError) as error:
            KeyRing(bad)  # type: ignore[arg-type]
        assert "'x'" in str(error.value)
        assert key[:10] not in str(error.value)
        assert "not base64" not in str(error.value)


@pytest.mark.parametrize(
    ("keys", "what"),
    [
        ({}, "at least one key"),
        ({"": "k"}, "key id"),
        ({"a b": "k"}, "key id"),
        ({"a:b": "k"}, "key id"),
    ],
)
def test_a_bad_ring_names_what_is_wrong(keys: dict[str, str], what: str) -> None:
    with pytest.raises(InvalidArgumentError, match=what):
        KeyRing(keys)


def test_a_ring_is_read_from_the_environment_and_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = KeyRing.generate_key(), KeyRing.generate_key()
    monkeypatch.setenv("SHAREDCTX_KEYS", f"new:{first},old:{second}")
    assert KeyRing.from_env().key_ids == ("new", "old")
    monkeypatch.setenv("MY_KEYS", f" only:{first} ")
    assert KeyRing.from_env("MY_KEYS").key_ids == ("only",)
    path = tmp_path / "keys"
    path.write_text(f"new:{first}\nold:{second}\n")
    assert KeyRing.from_file(path).key_ids == ("new", "old")
    monkeypatch.setenv("SHAREDCTX_KEYS", f"new:{first},{second}")
    with pytest.raises(
        InvalidArgumentError, match="item 2 of \\$SHAREDCTX_KEYS is not id:key"
    ) as bad:
        KeyRing.from_env()
    assert second not in str(bad.value)
    monkeypatch.setenv("SHAREDCTX_KEYS", f"a:{first},a:{second}")
    with pytest.raises(InvalidArgumentError, match="twice"):
        KeyRing.from_env()
    monkeypatch.delenv("SHAREDCTX_KEYS")
    with pytest.raises(InvalidArgumentError, match="SHAREDCTX_KEYS holds no keys"):
        KeyRing.from_env()
    with pytest.raises(InvalidArgumentError, match="cannot read the key file"):
        KeyRing.from_file(tmp_path / "missing")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=os.environ
    )


def test_import_sharedctx_does_not_import_cryptography() -> None:
    done = _python("import sys, sharedctx; sharedctx.KeyRing; print('cryptography' in sys.modules)")
    assert done.stdout.strip() == "False", done.stderr


def test_a_ring_without_the_extra_raises_an_import_error_naming_it() -> None:
    done = _python(
        "import sys; sys.modules['cryptography'] = None\n"
        "from sharedctx import KeyRing\n"
        "key = KeyRing.generate_key()\n"
        "try:\n    KeyRing({'a': key})\n"
        "except ImportError as error:\n    print(error)\n"
    )
    assert "pip install 'sharedctx[sealed]'" in done.stdout, done.stderr
