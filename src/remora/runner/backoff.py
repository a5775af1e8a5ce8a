"""CrashLoopBackOff: how long to wait before restarting a container that exited.

kubernetes.io, "Pod Lifecycle" (Container restarts): "the kubelet restarts them with an
exponential backoff delay (10s, 20s, 40s, …), that is capped at 300 seconds (5 minutes). Once a
container has executed for 10 minutes without any problems, the kubelet resets the restart
backoff timer for that container."

The kubelet (kuberuntime doBackOff with client-go flowcontrol.Backoff) restarts the first exit
at once and records a 10 s window; each later exit waits the recorded window, which then
doubles up to the cap. An exit more than 2 × cap (10 minutes) after the previous one starts over
(flowcontrol `hasExpired`). Pure: the caller passes the exit time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CrashLoopBackOff:
    """Restart delays of one container: 0, 10, 20, 40, ... capped at 300 seconds."""

    initial: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0
    _window: float | None = field(default=None, init=False)
    _last_exit: float = field(default=0.0, init=False)

    def record_exit(self, now: float) -> float:
        """The container exited at `now`: seconds to wait before starting it again."""
        if self._window is None or now - self._last_exit > self.reset_after:
            self._window, self._last_exit = self.initial, now
            return 0.0
        wait = self._window
        self._window, self._last_exit = min(self._window * 2, self.cap), now
        return wait

    @property
    def window(self) -> float:
        """The delay the next exit would wait (0 before any exit), e.g. for `remora status`."""
        return self._window or 0.0
