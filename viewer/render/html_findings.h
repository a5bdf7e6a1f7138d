// The explain findings as an HTML fragment for the report: one card per finding (severity,
// title, evidence, fixes with the ready override rule in a copyable block), errors first.
#pragma once

#include <string>

#include "analysis/explain.h"

namespace dltrace::viewer {

// `<div class="findings">...</div>`: self-contained markup, every text HTML-escaped.
std::string findings_html(const ExplainResult& result);

}  // namespace dltrace::viewer
