#include "saga/definitions/account_lockout.hpp"

#include <cstdint>
#include <string>

#include "saga/codec.hpp"
#include "saga/dsl.hpp"

namespace saga::definitions {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::row;

// ---- saga data ----------------------------------------------------------------

struct account_data {
  std::string account_id;
  int failures = 0;                  // failed logins in the current window
  std::int64_t window_start_ms = 0;  // engine time of the window's first failure (0: no window)
  std::int64_t locked_until_ms = 0;  // engine time the unlock timer fires (0: not locked)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(account_data, account_id, failures, window_start_ms,
                                                locked_until_ms)

// ---- events -------------------------------------------------------------------

// Neither event needs data: the account is the subject.
using login_failed = dsl::event<"auth.login.failed">;
using login_succeeded = dsl::event<"auth.login.succeeded">;

using unlock = dsl::timer<"unlock">;

// ---- events it emits (dsl::emit<E>: a typo in a name does not compile) ----------

using account_locked = dsl::event<"account.locked">;
using account_unlocked = dsl::event<"account.unlocked">;

// ---- states -------------------------------------------------------------------

using fresh = dsl::state<"new">;
using open = dsl::state<"open">;
using locked = dsl::state<"locked">;

constexpr int failures_to_lock = 3;
constexpr std::int64_t failure_window = dsl::minutes(15);
constexpr std::int64_t lock_duration = dsl::minutes(30);

// ---- guards -------------------------------------------------------------------

// Time is the engine's (fsm.now_ms(): when the engine handles the event), not
// the event's `time` attribute: that is set by the sender, may be missing, and
// a sender's clock (or a replayed event) must not be able to open, stretch or
// close a window. The window is [first failure, first failure + 15 min).
struct failure_window_open {
  static constexpr std::string_view name = "failure_window_open";
  template <class E, class F, class S, class T>
  bool operator()(const E&, F& fsm, S&, T&) const {
    const auto& d = fsm.data();
    return d.failures > 0 && fsm.now_ms() - d.window_start_ms < failure_window;
  }
};

// This failure is the third within the open window.
struct third_failure_in_window {
  static constexpr std::string_view name = "third_failure_in_window";
  template <class E, class F, class S, class T>
  bool operator()(const E& e, F& fsm, S& s, T& t) const {
    return failure_window_open{}(e, fsm, s, t) && fsm.data().failures + 1 >= failures_to_lock;
  }
};

// ---- actions ------------------------------------------------------------------

struct keep_account {
  static constexpr std::string_view name = "keep_account";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    fsm.data().account_id = fsm.incoming().subject;
  }
};

// A failure outside any window opens a new one with this failure in it.
struct open_window {
  static constexpr std::string_view name = "open_window";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    fsm.data().failures = 1;
    fsm.data().window_start_ms = fsm.now_ms();
  }
};

struct count_failure {
  static constexpr std::string_view name = "count_failure";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    ++fsm.data().failures;
  }
};

struct reset_failures {
  static constexpr std::string_view name = "reset_failures";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    auto& d = fsm.data();
    d.failures = 0;
    d.window_start_ms = 0;
    d.locked_until_ms = 0;
  }
};

struct record_lock {
  static constexpr std::string_view name = "record_lock";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    ++fsm.data().failures;
    fsm.data().locked_until_ms = fsm.now_ms() + lock_duration;
  }
};

// While locked, logins are the lock's business: failures neither count
// towards the next window nor extend the lock, and a success (a login that
// raced the lock) does not lift it. A row that takes them and does nothing,
// because without one the engine would park them (the open state takes them)
// and replay them when the account unlocks.
struct ignore_while_locked {
  static constexpr std::string_view name = "ignore_while_locked";
  template <class E, class F, class S, class T>
  void operator()(const E&, F&, S&, T&) const {}
};

// account.locked says how many failures, since when, and until when.
struct lock_notice {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E&) const {
    auto j = fsm.carried_data();
    j["failures"] = fsm.data().failures;
    j["window_start"] = saga::format_time(fsm.data().window_start_ms);
    j["locked_until"] = saga::format_time(fsm.data().locked_until_ms);
    return j;
  }
};

using lock =
    dsl::actions<record_lock, dsl::emit<account_locked, lock_notice>, dsl::arm<unlock, lock_duration>>;

// The operator's abort: back to open with the count reset; an account that was
// locked is unlocked early (account.unlocked), one that was open stays quiet.
struct unlock_early {
  static constexpr std::string_view name = "unlock_early";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    if (fsm.data().locked_until_ms != 0) fsm.emit("account.unlocked", fsm.carried_data());
  }
};

// ---- the machine -------------------------------------------------------------

struct lockout_machine : dsl::machine<lockout_machine, account_data> {
  static constexpr std::string_view name = "account_lockout";
  using initial_state = fresh;

  // consumes and starts come from the table; no state is terminal (open and locked each have
  // a way out).
  // clang-format off
  using transition_table = dsl::table<
    //   source  event            target  action                                                       guard
    row< fresh,  login_failed,    open,   dsl::actions<keep_account, open_window> >,
    row< fresh,  login_succeeded, open,   keep_account >,
    row< open,   login_failed,    none,   open_window,                                                 dsl::not_<failure_window_open> >,
    row< open,   login_failed,    none,   count_failure,                                               dsl::all_of<failure_window_open, dsl::not_<third_failure_in_window>> >,
    row< open,   login_failed,    locked, lock,                                                        third_failure_in_window >,
    row< open,   login_succeeded, none,   reset_failures >,
    row< locked, unlock,          open,   dsl::actions<reset_failures, dsl::emit<account_unlocked>> >,
    row< locked, login_failed,    none,   ignore_while_locked >,
    row< locked, login_succeeded, none,   ignore_while_locked >
  >;
  // clang-format on

  // The operator's abort unlocks the account early (or just resets the count).
  using abort_state = open;
  using abort_actions = dsl::actions<dsl::disarm<unlock>, unlock_early, reset_failures>;

  // Every follow-on event of an account names the account.
  static nlohmann::json carried(const account_data& d) { return {{"account_id", d.account_id}}; }
};

}  // namespace

std::shared_ptr<const saga::definition> account_lockout() {
  return dsl::make_definition<lockout_machine>();
}

}  // namespace saga::definitions
