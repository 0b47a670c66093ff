// The HTML page of a run report (src/exec/report_html.cpp; docs/engine.md "Resume, progress and run report"): one
// lane per rank and one bar per work unit in the timeline, inside its rank's lane; one row per stage; one heat-map
// cell per (tensor kind, layer) of the quantized tensors; names from the report escaped; nothing fetched from
// outside the page; an old report without /units and /stages still renders, saying so.
#include "exec/report.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

namespace sf = shardforge;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
    return n;
}

// Two ranks, rank 1 with two threads; a tensor whose name would break the page if it were not escaped.
sf::exec::ReportData sample() {
    sf::exec::ReportData d;
    d.path = "run.h5", d.version = "test", d.out_dir = "out";
    d.ranks = 2, d.threads = 2, d.seconds = 1;
    d.names = {"blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.0.ffn_down.weight", "output.weight",
               "<script>alert(\"x\")</script>&"};
    d.files = {"m.gguf", "m.gguf", "m.gguf", "m.gguf", "m.gguf"};
    d.types = {"Q4_K", "Q4_K", "Q6_K", "Q6_K", "F32"};
    d.nbytes = {10, 10, 10, 10, 4};
    d.nans = {0, 0, 0, 0, 0};
    d.rmse = {0.05, 0.07, 0.02, 0.01, NAN};
    d.delta = {NAN, NAN, NAN, NAN, NAN};
    d.seconds_of = {0.1, 0.1, 0.1, 0.1, 0.1};
    d.rank_of = {0, 1, 1, 0, 1};
    d.has_units = true;
    d.units = 6;
    // unit: rank, thread, start, end (tensor 2 in two row blocks on two threads)
    d.unit_times = {{0, 0, 0, 0.0, 0.2, 0}, {1, 1, 0, 0.0, 0.3, 0}, {2, 1, 1, 0.0, 0.25, 0},
                    {3, 1, 0, 0.3, 0.5, 0}, {4, 0, 0, 0.2, 0.6, 1}, {5, 1, 1, 0.25, 0.4, 0}};
    d.unit_tensor = {0, 1, 2, 2, 3, 4};
    d.unit_row_begin = {0, 0, 0, 8, 0, 0};
    d.unit_row_end = {16, 16, 8, 16, 32, 4};
    d.unit_nbytes = {10, 10, 5, 5, 10, 4};
    d.has_stages = true;
    d.stage_names_read = {"read", "dequant", "merge", "quantize", "write"};
    d.stage_bytes = {100, 100, 0, 40, 44};
    d.stage_seconds = {0.1, 0.2, 0, 0.3, 0.1, 0.2, 0.1, 0, 0.4, 0.1};
    return d;
}

// The text of the <g class="lane" data-rank="R"> element.
std::string lane(const std::string& html, int r) {
    const auto b = html.find("<g class=\"lane\" data-rank=\"" + std::to_string(r) + "\">");
    if (b == std::string::npos) return "";
    return html.substr(b, html.find("</g>", b) - b);
}

}  // namespace

TEST(ReportHtml, OneLanePerRankAndOneBarPerUnit) {
    const std::string html = sf::exec::render_report_html(sample());
    EXPECT_EQ(count(html, "<g class=\"lane\""), 2u);
    EXPECT_EQ(count(html, "<rect class=\"bar\""), 6u);
    // every unit's bar is in its rank's lane
    const std::string l0 = lane(html, 0), l1 = lane(html, 1);
    for (const int u : {0, 4}) EXPECT_NE(l0.find("data-unit=\"" + std::to_string(u) + "\""), std::string::npos) << u;
    for (const int u : {1, 2, 3, 5}) EXPECT_NE(l1.find("data-unit=\"" + std::to_string(u) + "\""), std::string::npos) << u;
    EXPECT_EQ(count(l0, "<rect class=\"bar\""), 2u);
    EXPECT_EQ(count(l1, "<rect class=\"bar\""), 4u);
    // the hover title names the tensor, its rows and its times
    EXPECT_NE(html.find("<title>blk.0.ffn_down.weight\n"), std::string::npos);
    EXPECT_NE(html.find("rows 8-16"), std::string::npos);
    EXPECT_NE(html.find("0.3000 - 0.5000 s (0.2000 s), rank 1 thread 0"), std::string::npos);
    EXPECT_NE(html.find("verified from the journal"), std::string::npos);  // unit 4 was resumed
}

TEST(ReportHtml, BarsArePlacedByTime) {
    const std::string html = sf::exec::render_report_html(sample());
    // The axis spans 0 .. 0.6 s over 1000 px from x = 170: unit 3 (0.3 .. 0.5 s) starts at 670 and is 333.33 wide;
    // rank 1's thread 1 is the second sub-row of its lane.
    const std::regex bar3(R"re(data-unit="3" x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)")re");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(html, m, bar3));
    EXPECT_NEAR(std::stod(m[1]), 670.0, 0.01);
    EXPECT_NEAR(std::stod(m[3]), 333.33, 0.01);
    const std::regex bar5(R"re(data-unit="5" x="([0-9.]+)" y="([0-9.]+)")re");
    std::smatch m5;
    ASSERT_TRUE(std::regex_search(html, m5, bar5));
    EXPECT_NEAR(std::stod(m5[2]) - std::stod(m[2]), 16.0, 0.01);
}

TEST(ReportHtml, StagesAndHeatMap) {
    const std::string html = sf::exec::render_report_html(sample());
    EXPECT_EQ(count(html, "<tr class=\"stage\">"), 5u);
    // quantize: 0.3 + 0.4 s summed over the ranks
    EXPECT_NE(html.find("<td class=\"l\">quantize</td><td>0.700</td>"), std::string::npos);
    // kinds attn_q.weight (layers 0, 1), ffn_down.weight (layer 0), output.weight (no layer): 4 cells
    EXPECT_EQ(count(html, "<td class=\"cell\""), 4u);
    EXPECT_NE(html.find("attn_q.weight, layer 1: 1 tensor(s), Q4_K, mean 0.07"), std::string::npos);
    EXPECT_NE(html.find("output.weight, layer -: 1 tensor(s), Q6_K"), std::string::npos);
}

TEST(ReportHtml, SelfContainedAndEscaped) {
    const std::string html = sf::exec::render_report_html(sample());
    EXPECT_EQ(html.find("http://"), std::string::npos);
    EXPECT_EQ(html.find("https://"), std::string::npos);
    EXPECT_EQ(html.find(" src="), std::string::npos);
    EXPECT_EQ(html.find(" href="), std::string::npos);
    EXPECT_EQ(html.find("<script>alert"), std::string::npos);
    EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;"), std::string::npos);
    EXPECT_EQ(count(html, "<script>"), 1u);  // the page's own counter
}

TEST(ReportHtml, OldReportWithoutUnitsOrStages) {
    auto d = sample();
    d.has_units = false, d.has_stages = false;
    d.unit_times.clear(), d.unit_tensor.clear();
    const std::string html = sf::exec::render_report_html(d);
    EXPECT_EQ(count(html, "<rect class=\"bar\""), 0u);
    EXPECT_NE(html.find("no /units group"), std::string::npos);
    EXPECT_NE(html.find("no /stages group"), std::string::npos);
    EXPECT_EQ(count(html, "<td class=\"cell\""), 4u);  // the heat map comes from /tensors
}
