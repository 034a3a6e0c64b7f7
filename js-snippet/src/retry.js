// Retry policy (pure). Retry network errors (status 0), 429 and 5xx; never other 4xx.
export const retriable = (status) => status === 0 || status === 429 || status >= 500;

// Exponential backoff with full jitter, capped; a server Retry-After (seconds) is a floor.
export const backoffMs = (attempt, retryAfterS, rand, baseMs = 1000, capMs = 60000) => {
  const exp = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.max((retryAfterS || 0) * 1000, Math.round(exp / 2 + (rand * exp) / 2));
};
