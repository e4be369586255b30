// Where the blocks are. Reads and writes of layout are kept apart: every
// block's box is read in one pass when the layout changes (resize, fonts,
// images), and scrolling and drawing only read these cached numbers.

/** Where the reading line sits, as a fraction of the viewport height. */
const READING_LINE = 1 / 3;

/** Block tops and heights relative to `env.reader` (the lane's coordinate
 * system), and that container's top in document coordinates. */
export function layout(env) {
  const blocks = env.blocks;
  let tops = [];
  let heights = [];
  let readerTop = 0;
  /** Where the reader's own ghost stands: the outer third of the lane, so
   * it never hides another ghost, which stand nearer the text. */
  let ownLeft = 0;

  return {
    measure: function () {
      if (env.beforeMeasure) env.beforeMeasure();
      const box = env.reader.getBoundingClientRect();
      readerTop = box.top + window.scrollY;
      const laneBox = env.lane.getBoundingClientRect();
      ownLeft = laneBox.left + laneBox.width * 0.28;
      tops = new Array(blocks.length);
      heights = new Array(blocks.length);
      for (let i = 0; i < blocks.length; i++) {
        const rect = blocks[i].getBoundingClientRect();
        tops[i] = rect.top - box.top;
        heights[i] = rect.height;
      }
    },
    top: function (i) {
      return tops[i] || 0;
    },
    height: function (i) {
      return heights[i] || 0;
    },
    ownLeft: function () {
      return ownLeft;
    },
    /** Block position (e.g. 12.37) → y in the lane's coordinates. */
    yOf: function (pos) {
      if (!tops.length) return 0;
      const i = Math.floor(pos);
      if (i >= tops.length) return tops[tops.length - 1] + heights[heights.length - 1];
      if (i < 0) return tops[0];
      return tops[i] + (pos - i) * heights[i];
    },
    /** The reading line → block position, per docs/PROTOCOL.md. */
    readingPosition: function () {
      if (!tops.length) return 0;
      const line = window.scrollY + window.innerHeight * READING_LINE - readerTop;
      if (line <= tops[0]) return 0;
      let lo = 0;
      let hi = tops.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (tops[mid] <= line) lo = mid;
        else hi = mid - 1;
      }
      const last = tops.length - 1;
      if (lo === last && line >= tops[last] + heights[last]) return env.blockCount;
      const fraction = heights[lo] > 0 ? Math.min((line - tops[lo]) / heights[lo], 0.999) : 0;
      return Math.min(Math.round((lo + fraction) * 1000) / 1000, env.blockCount);
    },
  };
}
