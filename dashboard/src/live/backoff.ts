// Reconnect delays: exponential, capped, with jitter so that many dashboards dropped by one server
// restart do not all reconnect in the same instant (API Gateway limits new connections per second).

export interface BackoffPolicy {
  initialMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, capMs: 10_000 };

/**
 * Delay before reconnect attempt `attempt` (0 = first retry). "Equal jitter": half the exponential
 * step is fixed and half is random, so delays still grow but never collapse to zero.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  const safeAttempt = Math.max(0, Math.min(attempt, 30));
  const step = Math.min(policy.capMs, policy.initialMs * 2 ** safeAttempt);
  const jitter = Math.min(Math.max(random(), 0), 1);
  return Math.round(step / 2 + (step / 2) * jitter);
}
