// Engaged time (pure, explicit now): time counts only while the tab is visible and the user was active
// within idleMs (or media plays). Credited to the content in view, emitted in heartbeats.
export const createEngagement = (idleMs = 30000, maxStepMs = 5000) => {
  let last = null;
  let active = -1e15;
  const acc = {};
  return {
    activity(now) {
      active = now;
    },
    // call often (every second) with the current state; returns the ms credited for this step
    tick(now, visible, contentId, playing) {
      const step = last == null ? 0 : Math.min(now - last, maxStepMs);
      last = now;
      if (!visible || step <= 0 || (!playing && now - active > idleMs)) return 0;
      const k = contentId || "";
      acc[k] = (acc[k] || 0) + step;
      return step;
    },
    // hand over what accumulated, per content id ("" = the room itself), and reset
    drain() {
      const out = Object.entries(acc).filter(([, ms]) => ms > 0);
      for (const k in acc) delete acc[k];
      return out;
    },
    pause() {
      last = null;
    },
  };
};
