#pragma once
// A real headless browser for tests (Debian's chromium), driven over W3C WebDriver: chromedriver
// runs as a child process on a port it chooses itself (--port=0; it prints the port it bound),
// and this class speaks WebDriver's HTTP+JSON to it with cpp-httplib's client. One browser, one
// session, one tab.
//
// Contract: the constructor starts chromedriver in a process group of its own and opens a
// session of headless chromium with a user-data-dir in the given temporary folder; it throws
// std::runtime_error saying what is missing when chromium or chromedriver is not installed
// (scripts/install-deps.sh installs both) or when either does not start. Every operation throws
// std::runtime_error carrying WebDriver's error and message when the browser refuses it. The
// destructor ends the session and kills chromedriver's whole process group (the browser and
// its helpers with it), also when a test failed half-way. Not thread-safe: one test, one thread.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace httplib {
class Client;
}

namespace saga::test {

class browser {
 public:
  // A reference to an element of the current page (WebDriver's element id).
  struct element {
    std::string id;
  };

  // Starts chromedriver and a headless chromium `width` x `height` CSS pixels large; their
  // logs and the browser profile go into `dir`.
  explicit browser(const temp_dir& dir, int width = 1280, int height = 900);
  ~browser();
  browser(const browser&) = delete;
  browser& operator=(const browser&) = delete;

  // Loads `url` and waits until the page has loaded.
  void go(const std::string& url);
  // The address of the page shown.
  std::string url();

  // The first element matching the CSS selector, or nothing.
  std::optional<element> find(const std::string& css);
  // The first element matching the CSS selector; throws when there is none.
  element get(const std::string& css);
  std::vector<element> find_all(const std::string& css);

  // Clicks the element as a user would (scrolled into view, at its centre); a link is followed
  // and its page loaded before this returns.
  void click(const element& e);
  // Types `text` into the element (a field), key by key, as a user would.
  void type(const element& e, const std::string& text);
  // The element's rendered text (what a user sees: hidden text left out).
  std::string text(const element& e);
  // The element's attribute, or nothing when it has none.
  std::optional<std::string> attribute(const element& e, const std::string& name);

  // Runs `script` (a function body; `arguments` holds `args`, elements passed as
  // element_arg) in the page and returns what it returns, as JSON. WebDriver runs it outside the
  // page's Content-Security-Policy.
  nlohmann::json run(const std::string& script, nlohmann::json args = nlohmann::json::array());
  static nlohmann::json element_arg(const element& e);
  // Polls the script until it returns true; false after `timeout`.
  bool wait_until(const std::string& script, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // A Chrome DevTools Protocol command through chromedriver (goog/cdp/execute).
  nlohmann::json devtools(const std::string& command, nlohmann::json params = nlohmann::json::object());

  // The whole page (beyond the window's height) as a PNG file at `png_path`; folders made.
  void screenshot(const std::string& png_path);

  // Ends the session (the browser quits) and chromedriver; the destructor does it otherwise.
  void close();

  // chromedriver's output, for a failing test's message.
  std::string log() const;

 private:
  nlohmann::json call(const std::string& method, const std::string& path,
                      const nlohmann::json& body = nlohmann::json::object());
  std::string session_path(const std::string& rest) const;

  std::unique_ptr<process> driver_;
  std::unique_ptr<httplib::Client> http_;
  std::string session_;
};

}  // namespace saga::test
