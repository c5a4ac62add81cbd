// MathJax configuration for pymdownx.arithmatex (generic mode), as the Material for MkDocs
// documentation recommends; the MathJax script itself is vendored in javascripts/mathjax/.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: { fontCache: "global" },
};

if (typeof document$ !== "undefined") {
  // re-typeset after Material's instant navigation swaps the page content
  document$.subscribe(() => {
    if (MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
