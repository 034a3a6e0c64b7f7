// A capped event queue persisted in storage (localStorage): survives reloads and offline periods.
// Oldest events are dropped past the cap (an ad-blocked endpoint must not fill storage).
export const createQueue = (storage, key, cap = 500) => {
  let items = [];
  try {
    items = JSON.parse(storage.getItem(key)) || [];
  } catch (e) {}
  const save = () => {
    try {
      storage.setItem(key, JSON.stringify(items));
    } catch (e) {}
  };
  return {
    push(e) {
      items = [...items, e].slice(-cap);
      save();
    },
    peek: (n) => items.slice(0, n),
    // remove what peek returned (the same objects)
    remove(done) {
      items = items.filter((e) => !done.includes(e));
      save();
    },
    size: () => items.length,
    clear() {
      items = [];
      save();
    },
  };
};
