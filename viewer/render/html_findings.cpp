#include "render/html_findings.h"

#include "fmt/format.h"
#include "render/dot_text.h"

namespace dltrace::viewer {
namespace {

// Paths and error texts are bytes: dot_html also makes them valid UTF-8. It drops control
// characters, so lines are escaped one by one (an override rule is several lines).
std::string escape(std::string_view s) {
  std::string out;
  while (true) {
    size_t nl = s.find('\n');
    out += dot_html(s.substr(0, nl));
    if (nl == std::string_view::npos) return out;
    out += '\n';
    s.remove_prefix(nl + 1);
  }
}

std::string finding_html(const Finding& f) {
  const bool probe = f.kind == "probe";
  const char* severity = probe ? "probe" : severity_name(f.severity);
  std::string out = fmt::format(
      "<details class=\"finding {}\"{}><summary><span class=\"severity\">{}</span> "
      "<code>{}</code>{} {}</summary>\n",
      severity, f.severity == Severity::kInfo ? "" : " open", severity, escape(f.kind),
      f.seq ? fmt::format(" <span class=\"seq\">#{}</span>", f.seq) : "", escape(f.title));
  if (f.repeats)
    out += fmt::format("<p class=\"repeats\">+{} more failed call{} {}</p>\n", f.repeats,
                       f.repeats == 1 ? "" : "s", probe ? "like it" : "with this cause");
  out += "<ul class=\"evidence\">\n";
  for (const auto& line : f.evidence) out += "<li>" + escape(line) + "</li>\n";
  out += "</ul>\n";
  if (!f.fixes.empty()) {
    out += "<p class=\"fix-title\"><b>Fix</b>" +
           std::string(f.fixes.size() > 1 ? " (any one)" : "") + ":</p>\n<ol class=\"fixes\">\n";
    for (const auto& fix : f.fixes) {
      out += "<li>" + escape(fix.text);
      if (!fix.config.empty()) out += "<pre class=\"rule\">" + escape(fix.config) + "</pre>";
      out += "</li>\n";
    }
    out += "</ol>\n";
  }
  out += "</details>\n";
  return out;
}

}  // namespace

std::string findings_html(const ExplainResult& result) {
  std::string out = "<div class=\"findings\">\n";
  size_t infos = result.findings.size() - result.problems;
  out += fmt::format("<p class=\"findings-summary\"><b>{} problem{}</b>, {} note{}{}.</p>\n",
                     result.problems, result.problems == 1 ? "" : "s", infos, infos == 1 ? "" : "s",
                     result.probe_calls
                         ? fmt::format(", {} probe{} (expected misses, below)", result.probe_calls,
                                       result.probe_calls == 1 ? "" : "s")
                         : "");
  if (result.findings.empty() && result.probe_calls == 0)
    out += "<p>No failed calls, duplicates or interpositions.</p>\n";
  for (const Finding& f : result.findings) out += finding_html(f);
  // Probes apart, folded: failed calls the program expected and handled, never a problem.
  if (result.probe_calls) {
    out += "<details class=\"probes\"><summary class=\"probe-summary\">" +
           escape(probe_summary(result)) + "</summary>\n";
    for (const Finding& f : result.probes) out += finding_html(f);
    out += "</details>\n";
  }
  out += "</div>\n";
  return out;
}

}  // namespace dltrace::viewer
