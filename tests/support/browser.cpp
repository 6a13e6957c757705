#include "support/browser.hpp"

#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <thread>

#ifndef SAGA_CHROMIUM
#define SAGA_CHROMIUM "/usr/bin/chromium"
#endif
#ifndef SAGA_CHROMEDRIVER
#define SAGA_CHROMEDRIVER "/usr/bin/chromedriver"
#endif

namespace saga::test {

namespace {

using json = nlohmann::json;

// WebDriver's key for an element reference in JSON.
constexpr const char* element_key = "element-6066-11e4-a52e-4f735466cecf";

void require_program(const std::string& path, const char* package) {
  if (::access(path.c_str(), X_OK) != 0)
    throw std::runtime_error(std::string("browser tests need Debian's ") + package + " (" + path +
                             " is missing): run scripts/install-deps.sh (make test does)");
}

// The port chromedriver --port=0 bound, from the line it prints once it listens
// ("ChromeDriver was started successfully on port 41235.").
int wait_for_port(process& driver, std::chrono::milliseconds timeout) {
  static const std::regex started(R"(started successfully on port ([0-9]+))");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::string out = driver.out();
    std::smatch m;
    if (std::regex_search(out, m, started)) return std::stoi(m[1]);
    if (!driver.running())
      throw std::runtime_error("chromedriver " + driver.wait_for(std::chrono::milliseconds(0)).describe() +
                               " before listening; output: " + out + driver.err());
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("chromedriver did not listen within " + std::to_string(timeout.count()) +
                               " ms; output: " + out + driver.err());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string base64_decode(const std::string& in) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const auto v = alphabet.find(c);
    if (v == std::string::npos) continue;  // line breaks
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

browser::browser(const temp_dir& dir, int width, int height) {
  require_program(SAGA_CHROMIUM, "chromium");
  require_program(SAGA_CHROMEDRIVER, "chromium-driver");
  driver_ = std::make_unique<process>(
      std::vector<std::string>{SAGA_CHROMEDRIVER, "--port=0", "--allowed-ips=127.0.0.1"},
      dir.file("chromedriver.out"), dir.file("chromedriver.err"), /*own_group=*/true);
  const int port = wait_for_port(*driver_, std::chrono::seconds(20));
  http_ = std::make_unique<httplib::Client>("127.0.0.1", port);
  http_->set_connection_timeout(std::chrono::seconds(10));
  http_->set_read_timeout(std::chrono::seconds(60));

  // CI runs as root on a clean machine: no sandbox (root cannot have one), no GPU, /tmp instead
  // of a small /dev/shm, nothing fetched in the background, a fixed scale for screenshots.
  const json args = {"--headless=new",
                     "--no-sandbox",
                     "--disable-gpu",
                     "--disable-dev-shm-usage",
                     "--disable-extensions",
                     "--disable-background-networking",
                     "--disable-component-update",
                     "--disable-default-apps",
                     "--disable-sync",
                     "--no-first-run",
                     "--no-default-browser-check",
                     "--password-store=basic",
                     "--hide-scrollbars",
                     "--force-device-scale-factor=1",
                     "--lang=en-US",
                     "--window-size=" + std::to_string(width) + "," + std::to_string(height),
                     "--user-data-dir=" + dir.file("chromium-profile")};
  const json caps = {{"capabilities",
                      {{"alwaysMatch",
                        {{"browserName", "chrome"},
                         {"pageLoadStrategy", "normal"},
                         {"goog:chromeOptions", {{"binary", SAGA_CHROMIUM}, {"args", args}}}}}}}};
  try {
    session_ = call("POST", "/session", caps).at("sessionId").get<std::string>();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("no browser session: ") + e.what() + "; chromedriver: " + log());
  }
}

browser::~browser() {
  try {
    close();
  } catch (const std::exception&) {  // the group is killed below in any case
  }
  if (driver_) driver_->kill9_group();
}

void browser::close() {
  if (!session_.empty()) {
    const auto s = std::move(session_);
    session_.clear();
    http_->set_read_timeout(std::chrono::seconds(10));
    http_->Delete(("/session/" + s).c_str());
  }
  if (!driver_) return;
  // chromedriver's own way out (it removes its temporary folders), then the group in any case.
  if (driver_->running()) {
    http_->Get("/shutdown");
    driver_->wait_for(std::chrono::seconds(5));
  }
  driver_->kill9_group();
}

std::string browser::log() const {
  return driver_ ? driver_->out() + driver_->err() : std::string();
}

std::string browser::session_path(const std::string& rest) const {
  if (session_.empty()) throw std::runtime_error("browser: no session (closed)");
  return "/session/" + session_ + rest;
}

json browser::call(const std::string& method, const std::string& path, const json& body) {
  httplib::Result res = method == "GET"      ? http_->Get(path.c_str())
                        : method == "DELETE" ? http_->Delete(path.c_str())
                                             : http_->Post(path.c_str(), body.dump(), "application/json");
  if (!res)
    throw std::runtime_error("WebDriver " + method + " " + path + ": " + httplib::to_string(res.error()));
  const json answer = json::parse(res->body, nullptr, false);
  const json value = answer.is_object() && answer.contains("value") ? answer["value"] : json();
  if (res->status != 200) {
    const std::string error = value.is_object() ? value.value("error", std::string()) : std::string();
    const std::string message = value.is_object() ? value.value("message", std::string()) : res->body;
    throw std::runtime_error("WebDriver " + method + " " + path + ": " + std::to_string(res->status) + " " +
                             error + ": " + message.substr(0, 2000));
  }
  return value;
}

void browser::go(const std::string& url) {
  call("POST", session_path("/url"), {{"url", url}});
}

std::string browser::url() {
  return call("GET", session_path("/url")).get<std::string>();
}

std::optional<browser::element> browser::find(const std::string& css) {
  const auto found = find_all(css);
  if (found.empty()) return std::nullopt;
  return found.front();
}

browser::element browser::get(const std::string& css) {
  if (auto e = find(css)) return *e;
  throw std::runtime_error("browser: no element matches '" + css + "' on " + url());
}

std::vector<browser::element> browser::find_all(const std::string& css) {
  std::vector<element> out;
  for (const auto& e : call("POST", session_path("/elements"), {{"using", "css selector"}, {"value", css}}))
    out.push_back({e.at(element_key).get<std::string>()});
  return out;
}

void browser::click(const element& e) {
  call("POST", session_path("/element/" + e.id + "/click"));
  if (!wait_until("return document.readyState === 'complete';"))
    throw std::runtime_error("browser: the page did not load after a click");
}

void browser::type(const element& e, const std::string& text) {
  call("POST", session_path("/element/" + e.id + "/value"), {{"text", text}});
}

std::string browser::text(const element& e) {
  return call("GET", session_path("/element/" + e.id + "/text")).get<std::string>();
}

std::optional<std::string> browser::attribute(const element& e, const std::string& name) {
  const json v = call("GET", session_path("/element/" + e.id + "/attribute/" + name));
  if (v.is_null()) return std::nullopt;
  return v.get<std::string>();
}

json browser::run(const std::string& script, json args) {
  return call("POST", session_path("/execute/sync"), {{"script", script}, {"args", std::move(args)}});
}

json browser::element_arg(const element& e) {
  return {{element_key, e.id}};
}

bool browser::wait_until(const std::string& script, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (run(script) == true) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

json browser::devtools(const std::string& command, json params) {
  return call("POST", session_path("/goog/cdp/execute"), {{"cmd", command}, {"params", std::move(params)}});
}

void browser::screenshot(const std::string& png_path) {
  // The page's whole size, then one capture beyond the window (WebDriver's own screenshot is
  // the window only).
  const json metrics = devtools("Page.getLayoutMetrics");
  const json size = metrics.at("cssContentSize");
  const json shot = devtools(
      "Page.captureScreenshot",
      {{"format", "png"},
       {"captureBeyondViewport", true},
       {"clip",
        {{"x", 0}, {"y", 0}, {"width", size.at("width")}, {"height", size.at("height")}, {"scale", 1}}}});
  const auto png = base64_decode(shot.at("data").get<std::string>());
  const std::filesystem::path path(png_path);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(png_path, std::ios::binary | std::ios::trunc);
  out.write(png.data(), static_cast<std::streamsize>(png.size()));
  if (!out) throw std::runtime_error("browser: cannot write " + png_path);
}

}  // namespace saga::test
