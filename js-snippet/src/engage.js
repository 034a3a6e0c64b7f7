// Engaged time (pure, explicit now): time counts only while the tab is visible and the user was active
// within idleMs (or media plays). Credited to a key (the content and page in view, "" for the room itself), emitted in heartbeats.
export const createEngagement = (idleMs = 30000, maxStepMs = 5000) => {
  let last = null;
  let active = -1e15;
  let acc = {};
  return {
    activity(now) {
      active = now;
    },
    // call often (every second) with the current state; returns the ms credited for this step
    tick(now, visible, key, playing) {
      const step = last == null ? 0 : Math.min(now - last, maxStepMs);
      last = now;
      if (!visible || step <= 0 || (!playing && now - active > idleMs)) return 0;
      acc[key] = (acc[key] || 0) + step;
      return step;
    },
    // hand over what accumulated, per key, and reset
    drain() {
      const out = Object.entries(acc);
      acc = {};
      return out;
    },
    pause() {
      last = null;
    },
  };
};
