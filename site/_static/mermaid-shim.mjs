// sphinxcontrib-mermaid imports Mermaid as an ES module; the site ships Mermaid's single-file
// bundle (loaded before this as a classic script), so this module hands over its global.
export default window.mermaid;
