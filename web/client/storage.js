// Web Storage that may be disabled or full: the client still works, only
// unremembered.

export function read(storage, key) {
  try {
    return storage.getItem(key);
  } catch (_) {
    return null;
  }
}

/** Stores `value` at `key`, or removes it when `value` is null. */
export function write(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
  } catch (_) {
    // Nothing to remember it in.
  }
}
