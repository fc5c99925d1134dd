"""An API token from its environment variable or from a token file, never from both.

A token file (``--token-file``, ``provider.token_file``) lets a cron job keep the secret
out of the environment and out of the job file: only its path is an option, so options can
still be logged and stored. The token itself is wrapped in a :class:`Secret` at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from purger.errors import UsageError
from purger.model import Secret
from purger.providers import ProviderOptions

__all__ = ["api_token"]


def api_token(options: ProviderOptions, env: Mapping[str, str], variable: str) -> Secret:
    """The token in ``variable``, or in ``options.token_file``.

    Both at once is an error rather than a silent choice: an operator who exports a token
    for one run must not have it quietly replaced by the job's file, nor the other way round.
    Messages name the variable or the file, never what is in them.
    """
    from_env = env.get(variable)
    path = options.token_file
    if path is None:
        if not from_env:
            raise UsageError(f"{variable} is not set")
        if not _one_word(from_env):
            # It goes into a header: a line break there would add headers of its own.
            raise UsageError(
                f"{variable} holds white space or control characters; it must hold the token alone"
            )
        return Secret(from_env)
    if from_env:
        raise UsageError(
            f"{variable} and --token-file (provider.token_file) are both set: unset one, "
            "so that it is clear which token is used"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(
            f"{path}: cannot read the token file ({err.strerror or type(err).__name__}) "
            "(--token-file, provider.token_file)"
        ) from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the token file is not UTF-8 text (--token-file)") from None
    token = text.strip()  # editors and `echo` add a final newline
    if not token:
        raise UsageError(f"{path}: the token file is empty (--token-file)")
    if not _one_word(token):
        raise UsageError(
            f"{path}: the token file holds more than one word; it must hold the token alone "
            "(--token-file)"
        )
    return Secret(token)


def _one_word(token: str) -> bool:
    """No white space, no control or other unprintable character: the token alone."""
    return token.isprintable() and not any(c.isspace() for c in token)
