// A poll of a query that reads no table (a live query would never rerun): every
// `everyMs` while the section is open, one call in flight at a time.

export function poll(fn, everyMs) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await fn();
    } finally {
      if (!stopped) timer = setTimeout(tick, everyMs);
    }
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
