"""Analysts: the users of the SQL port. Each has a name, a salted scrypt hash of its password and the sites whose
rows it may read (``["*"]``: every site). Kept in a JSON file beside the sites file
(``Settings.resolved_analysts_file``), managed with ``dealbeacon analyst add|remove|list``; never readable through
a query (the SQL port refuses every function and table that reads files).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import asdict, dataclass, field

import orjson

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
ALL_SITES = "*"
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash, as stored."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_ok(stored: str, password: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(got.hex(), digest)


_DUMMY = "scrypt$" + "00" * 16 + "$" + "00" * 32


@dataclass(frozen=True)
class Analyst:
    name: str
    password_hash: str
    sites: tuple[str, ...] = ()

    @property
    def all_sites(self) -> bool:
        return ALL_SITES in self.sites


@dataclass
class AnalystRegistry:
    analysts: dict[str, Analyst] = field(default_factory=dict)
    _verified: dict[str, bytes] = field(default_factory=dict, repr=False)  # name -> keyed digest of a good password
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def load(cls, path: str) -> AnalystRegistry:
        reg = cls()
        if os.path.exists(path):
            with open(path, "rb") as fh:
                raw = orjson.loads(fh.read())
            if not isinstance(raw, list):
                raise ValueError(f"{path}: expected a JSON list of analysts")
            for item in raw:
                reg.analysts[item["name"]] = Analyst(item["name"], item["password_hash"], tuple(item.get("sites", ())))
        return reg

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps([asdict(a) for a in self.analysts.values()], option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def add(self, name: str, sites: list[str], password: str | None = None) -> tuple[Analyst, str]:
        """Add or replace an analyst; returns it and its password (generated unless given)."""
        if not NAME_RE.fullmatch(name):
            raise ValueError("analyst name: 1-64 characters of A-Z a-z 0-9 _ . @ -")
        if not sites:
            raise ValueError("an analyst needs at least one --site (or --all-sites)")
        password = password or secrets.token_urlsafe(18)
        analyst = Analyst(name, hash_password(password), tuple(sites))
        self.analysts[name] = analyst
        self._verified.pop(name, None)
        return analyst, password

    def remove(self, name: str) -> bool:
        self._verified.pop(name, None)
        return self.analysts.pop(name, None) is not None

    def authenticate(self, name: str, password: str) -> Analyst | None:
        """The analyst if the password is right. scrypt is slow on purpose; a password already verified in this
        process is recognised by a keyed digest, so a client's every request does not pay it again."""
        analyst = self.analysts.get(name)
        if analyst is None or not password:
            password_ok(_DUMMY, password or "-")  # the same time whether the name exists or not
            return None
        tag = hmac.new(self._key, f"{name}\0{password}\0{analyst.password_hash}".encode(), hashlib.sha256).digest()
        known = self._verified.get(name)
        if known is not None and hmac.compare_digest(known, tag):
            return analyst
        if not password_ok(analyst.password_hash, password):
            return None
        self._verified[name] = tag
        return analyst


class AnalystsFile:
    """The analysts file, re-read when it changes (``dealbeacon analyst add`` while the server runs): the SQL
    port and the analytics dashboard authenticate against it."""

    def __init__(self, path: str):
        self.path, self.reg = path, AnalystRegistry()
        self._mtime: int | None = None

    def current(self) -> AnalystRegistry:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self.reg = AnalystRegistry.load(self.path) if mtime is not None else AnalystRegistry()
            self._mtime = mtime
        return self.reg


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header, or None (another scheme, or not decodable):
    the SQL port and the analytics dashboard read analysts' credentials this way."""
    if authorization[:6].lower() != "basic ":
        return None
    try:
        user, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return user, password
