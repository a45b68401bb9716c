"""The one error boundary of the command line.

Whatever reaches it — a labelvault error, a settings ``ValidationError``, a usage error of the
command line itself, Ctrl-C or a bug — ends the command with exactly one line on stderr that
says what was wrong and what to do, with secrets masked, and an exit code:
:data:`EXIT_BAD_INPUT` (2) for bad input, :data:`EXIT_FAILED` (1) for a failed operation,
:data:`EXIT_INTERRUPTED` (130) for Ctrl-C. Under ``--json`` the same line also goes to stdout
as ``{"error": "...", "exit_code": N}``. Never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from labelvault.errors import (
    AuthenticationError,
    BucketNotFound,
    ConfigurationError,
    IntegrityError,
    LabelvaultError,
    LeaseHeld,
    PlatformNotFound,
    PlatformUnavailable,
    RestoreError,
    StorageAccessDenied,
    StorageUnavailable,
    UnsupportedProject,
    VersionNotFound,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "BoundaryGroup",
    "Failure",
    "Reporter",
    "describe",
]

#: A failed operation: the server or store said no, a version does not exist, …
EXIT_FAILED = 1
#: Bad input: a flag, an argument or an environment variable that cannot be used.
EXIT_BAD_INPUT = 2
#: Ctrl-C.
EXIT_INTERRUPTED = 130

#: Secrets shorter than this are not masked (they would mask ordinary words).
_MIN_SECRET = 4
_SECRET_SUFFIXES = ("_TOKEN", "_SECRET_KEY", "_PASSWORD", "_SECRET")


class Failure(Exception):
    """A command's own refusal: ``message`` is the whole line, ``code`` the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@runtime_checkable
class Reporter(Protocol):
    """What the boundary needs from an invocation's state (see ``app.State``)."""

    json: bool
    project_id: str | None
    restore_id: str | None

    def env(self, suffix: str) -> str:
        """``LABELVAULT_<PLATFORM>_<SUFFIX>``."""
        ...

    def secret_values(self) -> list[str]:
        """Every secret the invocation knows."""
        ...


def env_secrets() -> list[str]:
    """The values of ``LABELVAULT_*`` variables that hold secrets."""
    return [
        value
        for name, value in os.environ.items()
        if name.startswith("LABELVAULT_") and name.endswith(_SECRET_SUFFIXES)
    ]


def _argv_secrets(args: Sequence[str]) -> list[str]:
    """Values of ``--token``, ``--to-token`` and ``--secret`` on a command line that never got
    parsed."""
    found: list[str] = []
    for index, arg in enumerate(args):
        for flag in ("--token", "--to-token", "--secret"):
            if arg == flag and index + 1 < len(args):
                found.append(args[index + 1])
            elif arg.startswith(f"{flag}="):
                found.append(arg.split("=", 1)[1])
    return found


# --- what each failure says ------------------------------------------------------------------


def _hint(exc: LabelvaultError, state: Reporter | None) -> str:
    """What to do about ``exc``, when its message does not say it already."""
    project = (state.project_id if state else None) or "PROJECT_ID"
    token_env = state.env("TOKEN") if state else "LABELVAULT_<PLATFORM>_TOKEN"
    hints: list[tuple[type[LabelvaultError], str]] = [
        (AuthenticationError, f"check the token (--token or {token_env})"),
        (PlatformNotFound, "check the project id and --server-url"),
        (UnsupportedProject, "capture an images project, or another platform's project"),
        (PlatformUnavailable, "check that the server is reachable, then run the command again"),
        (VersionNotFound, f"list the versions with: labelvault versions {project}"),
        (LeaseHeld, "another capture or expire is running on it; try again when it ends"),
        (IntegrityError, "the named object is damaged or missing; restore it from a backup"),
        (BucketNotFound, "create the bucket or fix --store"),
        (StorageAccessDenied, "check the LABELVAULT_STORE_S3_* credentials"),
        (StorageUnavailable, "check that the store is reachable, then run the command again"),
    ]
    if isinstance(exc, RestoreError):
        if exc.created_project is not None and state is not None and state.restore_id:
            return f"to resume, run the same command again with --restore-id {state.restore_id}"
        cause = exc.__cause__  # nothing was created: nothing to resume, fix the cause
        return _hint(cause, state) if isinstance(cause, LabelvaultError) else ""
    for kind, hint in hints:
        if isinstance(exc, kind):
            return hint
    return ""


def _settings_prefix(model_name: str) -> str | None:
    """The ``env_prefix`` of the settings class called ``model_name`` (``None``: not one)."""
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        kind = pending.pop()
        if kind.__name__ == model_name and kind is not BaseSettings:
            return str(kind.model_config.get("env_prefix") or "")
        pending.extend(kind.__subclasses__())
    return None


def _validation_message(exc: ValidationError) -> str:
    """One line for a pydantic error: which variable (or field) and what it should be."""
    prefix = _settings_prefix(exc.title)
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    if not problems:  # pragma: no cover - pydantic always lists at least one
        return f"invalid settings ({exc.title})"
    first = problems[0]
    field = "_".join(str(part) for part in first["loc"]) or "value"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if prefix is not None:
        name = f"{prefix}{field}".upper()
        return (
            f"environment variable {name} is invalid: {first['msg']}{more}; fix it or unset {name}"
        )
    return f"invalid {field} ({exc.title}): {first['msg']}{more}; fix the value and try again"


def describe(exc: BaseException, state: Reporter | None) -> tuple[str, int]:
    """The line and the exit code an exception ends the command with."""
    if isinstance(exc, Failure):
        return exc.message, exc.code
    if isinstance(exc, LabelvaultError):
        message = exc.message.rstrip(". ")
        hint = _hint(exc, state)
        code = EXIT_BAD_INPUT if isinstance(exc, ConfigurationError) else EXIT_FAILED
        return (f"{message}; {hint}" if hint else message), code
    if isinstance(exc, ValidationError):
        return _validation_message(exc), EXIT_BAD_INPUT
    if isinstance(exc, typer.TyperException):  # a usage error of the command line itself
        message = exc.format_message().rstrip(". ")
        path = getattr(getattr(exc, "ctx", None), "command_path", None) or "labelvault"
        return f"{message}; see: {path} --help", exc.exit_code
    if isinstance(exc, KeyboardInterrupt | typer.Abort):
        resume = state.restore_id if state is not None else None
        hint = f"; to resume, run the same command with --restore-id {resume}" if resume else ""
        return f"interrupted{hint}", EXIT_INTERRUPTED
    detail = str(exc).strip() or "no details"
    return (
        f"unexpected {type(exc).__name__}: {detail}; this is a bug in labelvault, "
        "please report it with the command that caused it",
        EXIT_FAILED,
    )


def report(
    exc: BaseException, state: Reporter | None, *, json_mode: bool, secrets: Sequence[str] = ()
) -> int:
    """Print the one line for ``exc`` (and its JSON form) and return the exit code."""
    message, code = describe(exc, state)
    line = " ".join(message.split())
    known = [*(state.secret_values() if state is not None else env_secrets()), *secrets]
    for secret in sorted({s for s in known if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        line = line.replace(secret, "***")
    err = Console(stderr=True, highlight=False, markup=False, emoji=False)
    err.print(Text(f"error: {line}", style="bold red"), soft_wrap=True)
    if json_mode:
        sys.stdout.write(json.dumps({"error": line, "exit_code": code}, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _is_no_args_help(exc: BaseException) -> bool:
    # click's "no arguments: print the help" signal, not a user mistake to condense.
    return type(exc).__name__ == "NoArgsIsHelpError"


class BoundaryGroup(TyperGroup):
    """The root command group: runs the command line inside the error boundary.

    ``invoke`` sees errors of the commands (with the invocation's state, for hints and secret
    masking); ``main`` sees the rest (options of the root that did not parse) and turns the
    exit code into the process's, like click does in standalone mode.
    """

    def invoke(self, ctx: Any) -> Any:
        """Run the callback and the command; report what escapes them."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, SystemExit):
            raise
        except BrokenPipeError:  # `labelvault query … | head`: stop quietly
            _silence_stdout()
            raise typer.Exit(0) from None
        except BaseException as exc:
            if _is_no_args_help(exc) or isinstance(exc, GeneratorExit):
                raise
            found = getattr(ctx.find_root(), "obj", None)
            state = found if isinstance(found, Reporter) else None
            code = report(exc, state, json_mode=state is not None and state.json)
            raise typer.Exit(code) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Parse and run; exit with the command's code (or return it, if not standalone)."""
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = result if isinstance(result, int) else 0
        except SystemExit:
            raise
        except BaseException as exc:
            if _is_no_args_help(exc):  # the help is printed already, as typer does
                code = int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
            else:
                options = argv[: argv.index("--")] if "--" in argv else argv
                code = report(exc, None, json_mode="--json" in options, secrets=_argv_secrets(argv))
        if standalone_mode:
            sys.exit(code)
        return code
