"""syftflwr's exception tree.

Every error a user can meet derives from :class:`SyftflwrError`, and transports map
their backends' failures (HTTP errors, OS errors, library exceptions) onto the
:class:`TransportError` branch so callers never need to catch a backend's types
(the model is httpx's ``_exceptions.py``).

Messages name the problem *and* the fix: an error a user cannot act on is a bug.

    SyftflwrError
    ├── ConfigError                 bad [tool.syftflwr] / settings / flags
    │   └── IdentityMismatchError   transport's identity != participant email
    ├── PluginError                 discovering, loading, validating plugins
    │   ├── TransportNotFoundError      unknown name (suggests the nearest)
    │   │   └── TransportNotInstalledError  known first-party name, not installed
    │   ├── TransportImportError        installed, but its module fails to import
    │   ├── DuplicateTransportError     two distributions claim one name
    │   ├── PluginAPIVersionError       built for another plugin-API version
    │   ├── PluginValidationError       hook implementation does not match the spec
    │   └── TransportUnavailableError   cannot serve this use (e.g. in-process only)
    └── TransportError              anything that goes wrong moving a message
        ├── MessageRejectedError        an envelope we refuse to accept or send
        │   ├── MalformedMessageError   truncated, garbage, wrong format version
        │   │   └── BlobGoneError       a shared blob not in storage (not yet, or no more)
        │   ├── MessageTooLargeError    above max_message_size / protobuf's limit
        │   ├── ForbiddenSenderError    sender not allowed / not who it claims
        │   ├── UnsafeNameError         id/email/app shaped like a path
        │   └── MessageExpiredError     past its expiry (beyond allowed skew)
        ├── EncryptionError             keys missing/wrong, decryption failed
        │   ├── MissingKeyError         own or a peer's key not there (yet)
        │   ├── UntrustedKeyError       a peer's key differs from the pinned one
        │   ├── DecryptionError         not sealed, tampered, or sealed for another key
        │   └── SignatureError          a signature that does not verify (altered, other key)
        ├── StorageError                backend I/O failure (after retries)
        └── TransportClosedError        role used after close()
"""

from __future__ import annotations

from collections.abc import Sequence

from syftflwr._deprecation import mark_private as _mark_private


class SyftflwrError(Exception):
    """Base class of every error raised by syftflwr and its transports."""


# --------------------------------------------------------------------------- config
class ConfigError(SyftflwrError, ValueError):
    """Invalid configuration. Names the source (file/env/flag), the key and the fix."""

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.key = key
        self.fix = fix
        where = ""
        if source and key:
            where = f"{source}: {key}: "
        elif source:
            where = f"{source}: "
        elif key:
            where = f"{key}: "
        text = f"{where}{problem}"
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)


class IdentityMismatchError(ConfigError):
    """The identity a transport reports differs from the participant's configured email."""


# --------------------------------------------------------------------------- plugins
class PluginError(SyftflwrError):
    """Problems discovering, importing or validating a transport plugin."""


class TransportNotFoundError(PluginError, LookupError):
    """No installed transport has the requested name."""

    def __init__(
        self,
        name: str,
        installed: Sequence[str],
        suggestion: str | None = None,
        suggestion_install: str | None = None,
    ) -> None:
        self.name = name
        self.installed = list(installed)
        self.suggestion = suggestion
        text = f"no transport named {name!r} is installed"
        if suggestion:
            text += f"; did you mean {suggestion!r}?"
        if suggestion and suggestion_install:
            text += f"\n  fix: {suggestion!r} is not installed either: {suggestion_install}"
        text += f"\n  installed transports: {', '.join(sorted(installed)) or '(none)'}"
        text += "\n  see them all with: syftflwr transports"
        text += (
            f"\n  fix: name {suggestion!r} instead"
            if suggestion
            else f"\n  fix: name an installed transport, or install the one called {name!r}"
        )
        super().__init__(text)


class TransportNotInstalledError(TransportNotFoundError):
    """A first-party transport was requested but its distribution is not installed."""

    def __init__(self, name: str, installed: Sequence[str], install: str) -> None:
        super().__init__(name, installed)
        self.install = install
        self.args = (
            f"the {name!r} transport is not installed\n"
            f"  fix: {install}\n"
            f"  installed transports: {', '.join(sorted(installed)) or '(none)'}",
        )


class TransportImportError(PluginError, ImportError):
    """An installed plugin's module failed to import; ``upgrade`` is the command that
    reinstalls it (the registry knows where syftflwr's own distributions come from)."""

    def __init__(
        self,
        name: str,
        distribution: str,
        version: str,
        module: str,
        cause: BaseException,
        upgrade: str,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.module = module
        self.cause = cause
        super().__init__(
            f"transport {name!r} from {distribution} {version} failed to import "
            f"({module}): {type(cause).__name__}: {cause}\n"
            f"  fix: reinstall or upgrade it ({upgrade}), "
            f"or disable it with SYFTFLWR_DISABLE_PLUGINS={name}"
        )


class DuplicateTransportError(PluginError):
    """Two distributions register the same transport name."""

    def __init__(self, name: str, claimants: Sequence[str]) -> None:
        self.name = name
        self.claimants = list(claimants)
        super().__init__(
            f"transport name {name!r} is claimed by several distributions: "
            f"{', '.join(claimants)}\n"
            f"  fix: uninstall all but one of them"
        )


class PluginAPIVersionError(PluginError):
    """The plugin was built for a plugin-API version this core does not speak."""


class PluginValidationError(PluginError):
    """A hook implementation does not match its specification."""


class TransportUnavailableError(PluginError):
    """The transport is installed but cannot serve the requested use here."""


# --------------------------------------------------------------------------- transport
class TransportError(SyftflwrError):
    """A failure while moving a message; backends map their errors onto this branch."""


class MessageRejectedError(TransportError):
    """An envelope that must not be accepted or sent."""


class MalformedMessageError(MessageRejectedError, ValueError):
    """Truncated, garbage, or of an unknown format version."""


class BlobGoneError(MalformedMessageError):
    """A shared blob a message names is not in storage: not yet (its sender names a
    blob while it still uploads, and says until when a reader should wait for it), or
    no more (expired, or dropped by its sender). Raise it with
    :func:`syftflwr.plugin.blob_gone`: core's reader waits and asks again only for it."""


class MessageTooLargeError(MessageRejectedError):
    """Larger than the configured max_message_size or protobuf's hard parse limit."""


class ForbiddenSenderError(MessageRejectedError):
    """The sender is not on the allowlist, or is not who the envelope claims."""


class UnsafeNameError(MessageRejectedError, ValueError):
    """An id, email or app name that could escape its mailbox (path-shaped)."""


class MessageExpiredError(MessageRejectedError):
    """The message expired (beyond the tolerated clock skew)."""


class EncryptionError(TransportError):
    """Encryption/decryption impossible; never answered by falling back to plaintext."""


class MissingKeyError(EncryptionError):
    """A key pair or a peer's published public key is missing (nothing is sent)."""


class UntrustedKeyError(EncryptionError):
    """A peer presents a key other than the one pinned for it: refused until a person
    accepts the change (``syftflwr keys trust``)."""


class DecryptionError(EncryptionError):
    """A message that should be sealed is not, was altered, or was sealed for another key."""


class SignatureError(EncryptionError):
    """A signed statement or file whose signature does not verify: altered after signing,
    or signed by another key than the signer's."""


class StorageError(TransportError, OSError):
    """The storage backend failed (after any retries the transport makes)."""


class TransportClosedError(TransportError):
    """A role object was used after it was closed."""


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
