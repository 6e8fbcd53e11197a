// MathJax 3 configuration for the lstm_pfd docs (MathJax itself is served from _static/vendor/mathjax).
// Embedded ipywidgets (html-manager 1.x) typeset labels with the MathJax 2 API (MathJax.Hub.Queue):
// map that call onto MathJax 3, before and after MathJax has loaded.
(function () {
  var hub = {
    Queue: function () {
      var els = [];
      Array.prototype.forEach.call(arguments, function (a) {
        if (Array.isArray(a) && a[0] === 'Typeset' && a[2]) els.push(a[2]);
      });
      var run = function () {
        var mj = window.MathJax;
        if (mj && mj.typesetPromise) mj.typesetPromise(els.length ? els : undefined).catch(function () {});
      };
      var mj = window.MathJax;
      if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(run);
      else window.addEventListener('load', run);
    }
  };
  window.MathJax = {
    options: {processHtmlClass: 'tex2jax_process|mathjax_process|math|output_area'},
    startup: {
      ready: function () {
        window.MathJax.startup.defaultReady();
        window.MathJax.Hub = hub;
      }
    },
    Hub: hub
  };
})();
