// Set-up for the saved-widget pages, loaded after require.js and before the widget manager.
// 1. The manager's bundle loads its icon fonts from where require.js places '@jupyter-widgets/...':
//    point that at the vendored bundle's folder (otherwise it asks the site root for them).
require.config({ paths: { "@jupyter-widgets": new URL("vendor/html-manager/dist", document.currentScript.src).href } });
// 2. ipywidgets typesets widget labels with MathJax 2's API (MathJax.Hub.Queue) whenever
//    window.MathJax exists; the site uses MathJax 4. Hand it that entry once the page has loaded
//    (MathJax's own script, deferred, has run by then; the manager draws the widgets on "load").
window.addEventListener("DOMContentLoaded", function () {
  var mj = window.MathJax;
  if (!mj || mj.Hub) return;
  mj.Hub = {
    Queue: function () {
      Array.prototype.forEach.call(arguments, function (job) {
        if (!Array.isArray(job) || job[0] !== "Typeset") return;
        var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
        ready.then(function () { return mj.typesetPromise ? mj.typesetPromise(job[2] ? [job[2]] : undefined) : null; });
      });
    },
  };
});
