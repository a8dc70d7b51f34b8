"""``router keys``: make and hash client API keys for ``server.auth.keys``.

router.yaml (and so the lock file) holds a key's sha256, never the key::

    server:
      auth:
        keys:
          - name: ci
            hash: sha256:9f86d08...     # router keys hash
            models: ["ollama/*"]
            rpm: 120
          - name: laptop
            key_env: ROUTER_KEY_LAPTOP  # or: the variable that holds the raw key

Keys are long random tokens (``router keys new``), so one sha256 is enough: there
is nothing to guess by brute force, and the hot path pays one hash per request.
"""

from __future__ import annotations

import hashlib
import secrets
import sys

import click

#: client keys start with this, so a leaked one is easy to recognise and grep for
PREFIX = "ilk-"


def key_hash(key: str) -> str:
    """``sha256:<hex>`` of a client key (the same function the runtime applies)."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random client key (256 bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def _snippet(name: str, digest: str) -> str:
    return (f"server:\n  auth:\n    keys:\n      - name: {name}\n        hash: {digest}\n")


@click.group("keys")
def keys() -> None:
    """Client API keys for the router (server.auth.keys in router.yaml).

    \b
    Examples:
      router keys new --name ci
      printf %s "$MY_KEY" | router keys hash
    """


@keys.command("hash")
@click.argument("key", required=False)
@click.option("--name", default="my-client", show_default=True, help="label in the snippet")
def keys_hash(key: str | None, name: str) -> None:
    """Print the sha256 of KEY (or of stdin) to put in router.yaml.

    Reading the key from stdin keeps it out of the shell history and the
    process list.
    """
    if key is None:
        if sys.stdin.isatty():
            key = click.prompt("key", hide_input=True)
        else:
            key = sys.stdin.read()
        key = key.strip()
    if not key:
        raise click.UsageError("the key is empty")
    click.echo(key_hash(key))
    click.echo("\n# router.yaml\n" + _snippet(name, key_hash(key)), nl=False, err=True)


@keys.command("new")
@click.option("--name", default="my-client", show_default=True, help="label in the snippet")
def keys_new(name: str) -> None:
    """Make a random key: prints the key (once: store it now) and its hash."""
    key = new_key()
    digest = key_hash(key)
    click.echo(f"key:  {key}")
    click.echo(f"hash: {digest}")
    click.echo("\n# router.yaml (the key itself never goes in a file)\n" + _snippet(name, digest),
               nl=False)
