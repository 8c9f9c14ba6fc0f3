"""`Policy`: what to do after each attempt, as tenacity says, plus time limits.

woflo does not reimplement backoff, jitter or exception filters: the simple
options (``retries``, ``retry_wait_time``) are turned into tenacity's own
``stop``/``wait``/``retry`` objects, and tenacity objects given by the user are
used as they are.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from woflo._errors import BrokenRunner, SerializationError
from woflo._limits import Limit, LimitSet, RateSpec, check_limit_names
from woflo._names import callable_name

if TYPE_CHECKING:
    import tenacity

__all__ = ["POLICY_OPTIONS", "Policy", "PolicyOptions", "retryable"]

#: The keyword options every runner, `WofloExecutor` and `@task` accept.
POLICY_OPTIONS = frozenset(
    {
        "retries",
        "retry_wait_time",
        "retry_sleep_time",
        "timeout",
        "deadline",
        "stop",
        "wait",
        "retry",
        "retrying",
        "max_concurrency",
        "rate_limit",
        "limits",
    }
)

# The options that make a policy's own `Limit` (a new one when either is given).
_OWN_LIMIT_OPTIONS = frozenset({"max_concurrency", "rate_limit"})

# Errors no retry can fix: pickling the same argument fails the same way, and
# a broken runner starts no worker for the next attempt either.
_NEVER_RETRIED = (SerializationError, BrokenRunner)


def retryable(exc: BaseException) -> bool:
    """Whether the default policy retries ``exc``.

    woflo 0.8 retried on ``Exception`` only (``KeyboardInterrupt`` and friends
    end a run); `SerializationError` and `BrokenRunner` end it too.
    """
    return isinstance(exc, Exception) and not isinstance(exc, _NEVER_RETRIED)


# tenacity is imported when a policy first needs its Retrying (a run's first
# failure with retries, a user's ``retry=`` or ``retrying=``): a run that
# succeeds at once, the usual case, never does, and neither does ``import woflo``.
_built_lock = threading.Lock()

# What tenacity calls with a RetryCallState, for a whole Retrying.
_RETRYING_CALLABLES = ("stop", "wait", "retry", "before", "after", "before_sleep", "retry_error_callback")


def _check_takes_retry_state(name: str, fn: object) -> None:
    """Raise TypeError now if tenacity could not call ``fn(retry_state)`` later.

    Found at run time, the TypeError would replace the task's own error.
    """
    if fn is None:
        return
    if not callable(fn):
        raise TypeError(f"{name} must be a tenacity {name} strategy or a callable, not {type(fn).__name__}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to check (some builtins): tenacity will tell
        return
    try:
        signature.bind(None)
    except TypeError as err:
        # The name only: the signature would show default values.
        raise TypeError(
            f"{name}={callable_name(fn)} cannot be called with one argument, tenacity's RetryCallState: {err}"
        ) from None


class _RunLocal:
    """A run's own stand-in for a Retrying's ``threading.local``.

    tenacity keeps a call's statistics and its step-by-step state in
    ``Retrying._local``, one per thread, because its loop runs in one thread.
    A run's steps happen in several (a worker reports, a timer launches the
    next attempt), so the run's copy of the Retrying keeps them here instead.
    """

    __slots__ = ("iter_state", "statistics")


def _positive_or_none(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Policy:
    """A run's retry policy and time limits.

    tenacity's strategies are used as tenacity uses them, with one consequence
    worth knowing: a ``stop`` strategy that returns a false value (``None``
    included) means "do not stop", so a ``stop=`` callable that forgets to
    return retries forever (bound it with ``deadline=``).

    The default policy (``retries=N`` without ``retry=``) retries on
    ``Exception`` except `SerializationError` and `BrokenRunner`, which no
    retry can fix; a ``retry=`` predicate or a whole ``Retrying`` decides for
    itself, as tenacity's predicates do.

    Attributes:
        retrying: the tenacity controller asked after every attempt.
        timeout: seconds one attempt may run, or ``None``.
        deadline: seconds the whole run may take, attempts and waits included.
        single_attempt: the policy can never ask for a second attempt.
        custom: the user gave a ``retry`` predicate or a whole ``Retrying``
            (which may retry on results or have hooks), so tenacity is asked at
            every step; otherwise a success ends the run without asking it.
        options: the options this policy was built from, for `Policy.build` overrides.
        limits: the concurrency and rate limits its attempts wait for, or
            ``None`` (the attempt-start path reads only this when there are none).
        plain: no deadline, no limits and not custom: attempt 1 starts at
            submit with nothing to arm first (what ``submit`` reads).
    """

    timeout: float | None
    deadline: float | None
    single_attempt: bool
    custom: bool
    options: Mapping[str, Any]
    # The user's Retrying, or woflo's own once built (see `retrying`).
    _retrying: Any = field(default=None, repr=False, compare=False)

    @property
    def retrying(self) -> tenacity.Retrying:
        """The tenacity controller asked after every attempt (woflo's own: built, tenacity imported, at first use)."""
        retrying = self._retrying
        if retrying is None:
            built = self._own_retrying(self.options)
            with _built_lock:  # one Retrying per policy, whichever thread builds it first
                retrying = self._retrying
                if retrying is None:
                    retrying = built
                    object.__setattr__(self, "_retrying", built)
        return retrying  # type: ignore[no-any-return]

    @classmethod
    def _own_retrying(cls, opts: Mapping[str, Any]) -> tenacity.Retrying:
        """woflo's Retrying for options already checked by `_from_options`."""
        import tenacity

        stop = opts.get("stop")
        wait = opts.get("wait")
        retry = opts.get("retry")
        if stop is None:
            stop = tenacity.stop_after_attempt((opts.get("retries") or 0) + 1)
        if wait is None:
            wait = tenacity.wait_fixed(cls._wait_time(dict(opts)) or 0.0)
        if retry is None:
            retry = tenacity.retry_if_exception(retryable)
        return tenacity.Retrying(stop=stop, wait=wait, retry=retry, reraise=True)

    limits: LimitSet | None = None
    plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", self.deadline is None and not self.custom and self.limits is None)

    @classmethod
    def build(cls, base: Policy | None = None, **options: Any) -> Policy:
        """Build a policy from woflo's options, on top of ``base``'s options.

        Args:
            base: a policy whose options are kept unless overridden.
            **options: any of `POLICY_OPTIONS`.

        Raises:
            TypeError: an unknown option, or a value of the wrong type.
            ValueError: a value out of range, or options that contradict each other.

        Example:
            >>> from tenacity import wait_exponential_jitter
            >>> Policy.build(retries=3, wait=wait_exponential_jitter(1, 30)).timeout is None
            True
        """
        unknown = set(options) - POLICY_OPTIONS
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(POLICY_OPTIONS))}"
            )
        merged = dict(base.options) if base is not None else {}
        merged.update(options)
        merged = {k: v for k, v in merged.items() if v is not None}
        policy = cls._from_options(merged)
        if base is not None and base.limits is not None and not _OWN_LIMIT_OPTIONS & set(options):
            # A copy of a task (`Task.options(retries=...)`) is the same task:
            # its attempts count against the same limit.
            own = base.limits.own
        else:
            own = _own_limit(merged)
        names = check_limit_names(merged["limits"]) if "limits" in merged else ()
        if own is None and not names:
            return policy
        return dataclasses.replace(policy, limits=LimitSet(own, names))

    @classmethod
    def _from_options(cls, opts: dict[str, Any]) -> Policy:
        timeout = _positive_or_none("timeout", opts.get("timeout"))
        deadline = _positive_or_none("deadline", opts.get("deadline"))
        retries = opts.get("retries")
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)):
            raise TypeError(f"retries must be an int, not {type(retries).__name__}")
        if retries is not None and retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        wait_time = cls._wait_time(opts)

        if "retrying" in opts:
            clash = {"retries", "retry_wait_time", "retry_sleep_time", "stop", "wait", "retry"} & set(opts)
            if clash:
                raise ValueError(f"give retrying= alone, or {', '.join(sorted(clash))} without it")
            import tenacity

            retrying = opts["retrying"]
            if not isinstance(retrying, tenacity.Retrying):
                raise TypeError(f"retrying must be a tenacity.Retrying, not {type(retrying).__name__}")
            for name in _RETRYING_CALLABLES:
                _check_takes_retry_state(f"retrying.{name}", getattr(retrying, name, None))
            # A disabled Retrying calls the function once, without any hook.
            enabled = bool(retrying.enabled)
            return cls(timeout, deadline, not enabled, enabled, opts, retrying)

        if retries is not None and "stop" in opts:
            raise ValueError("give retries= or stop=, not both")
        if wait_time is not None and "wait" in opts:
            raise ValueError("give retry_wait_time= or wait=, not both")
        cls._checked(opts, "stop")
        cls._checked(opts, "wait")
        retry = cls._checked(opts, "retry")
        single = "stop" not in opts and not retries
        # The Retrying itself is built on first use (`retrying`).
        return cls(timeout, deadline, single, retry is not None, opts)

    @staticmethod
    def _wait_time(opts: dict[str, Any]) -> float | None:
        # woflo 0.8.2 spelled it retry_wait_time, its README retry_sleep_time.
        a, b = opts.get("retry_wait_time"), opts.get("retry_sleep_time")
        if a is not None and b is not None and a != b:
            raise ValueError("retry_wait_time and retry_sleep_time are the same option; give one")
        value = a if a is not None else b
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"retry_wait_time must be a number of seconds, not {type(value).__name__}")
        if value < 0 or math.isinf(value) or math.isnan(value):
            raise ValueError(f"retry_wait_time must be >= 0 and finite, got {value!r}")
        return float(value)

    @staticmethod
    def _checked(opts: dict[str, Any], name: str) -> Any:
        value = opts.get(name)
        # tenacity accepts any callable taking the retry state; so do we (its
        # strategies are callables too: no need to import tenacity to tell).
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be a tenacity {name} strategy, not {type(value).__name__}")
        _check_takes_retry_state(name, value)
        return value

    def retry_state(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tenacity.RetryCallState:
        """A new run's `tenacity.RetryCallState`, on the run's own copy of the Retrying.

        The copy shares every strategy and hook with the user's object; only
        the statistics and tenacity's step state are the run's own, and not
        per thread (see `_RunLocal`): the run's hooks read the same
        ``retry_object.statistics`` as in tenacity's own loop, whichever
        thread calls them, and concurrent runs of one Retrying do not mix
        theirs. As tenacity's ``wraps`` does, the user's object shows the
        latest run's statistics in the thread that submitted it.
        """
        retrying = self.retrying
        own = object.__new__(type(retrying))
        own.__dict__.update(retrying.__dict__)
        own._local = _RunLocal()  # type: ignore[assignment]
        own.begin()
        retrying._local.statistics = own.statistics
        import tenacity  # imported already: `retrying` is built

        return tenacity.RetryCallState(own, fn, args, kwargs)


def _own_limit(opts: dict[str, Any]) -> Limit | None:
    """A new unnamed `Limit` from ``max_concurrency``/``rate_limit``, or ``None`` (checks both)."""
    concurrency, rate = opts.get("max_concurrency"), opts.get("rate_limit")
    if concurrency is None and rate is None:
        return None
    return Limit(None, concurrency, rate)


class AsyncPolicyOptions(TypedDict, total=False):
    """The policy keywords but ``max_concurrency``, which `woflo.AsyncRunner` takes as its own size."""

    retries: int | None
    retry_wait_time: float | None
    retry_sleep_time: float | None
    timeout: float | None
    deadline: float | None
    stop: Any
    wait: Any
    retry: Any
    retrying: tenacity.Retrying | None
    rate_limit: RateSpec | None
    limits: str | Limit | list[str | Limit] | tuple[str | Limit, ...] | None


class PolicyOptions(AsyncPolicyOptions, total=False):
    """The policy keywords, for typing ``**options`` of runners and tasks."""

    max_concurrency: int | None
