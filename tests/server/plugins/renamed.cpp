// A well-formed plugin whose definition no built-in of sagad has: the shipped
// account_lockout under the name plugin_lockout (same table, other name). It
// consumes the same event types as the built-in account_lockout, so the two
// cannot run side by side: the engine refuses that at start.
#include <saga/plugin.hpp>

#include "saga/definitions/account_lockout.hpp"

namespace {

class renamed final : public saga::definition {
 public:
  renamed(std::shared_ptr<const saga::definition> inner, std::string name) : inner_(std::move(inner)) {
    graph_ = inner_->graph();
    graph_.name = std::move(name);
#ifdef RENAMED_VERSION  // saga_test_plugin_renamed_v2: version 2 of plugin_lockout, migrating from 1
    graph_.version = RENAMED_VERSION;
    graph_.migrations.push_back({1, {}, {}});
#endif
    graph_.fingerprint = saga::compute_fingerprint(graph_);
  }
  const saga::graph& graph() const override {
    return graph_;
  }
  saga::dispatch_output dispatch(const saga::dispatch_input& in) const override {
    return inner_->dispatch(in);
  }
  saga::dispatch_output operator_action(const saga::dispatch_input& in, std::string_view action,
                                        std::string_view to) const override {
    return inner_->operator_action(in, action, to);
  }

 private:
  std::shared_ptr<const saga::definition> inner_;
  saga::graph graph_;
};

}  // namespace

SAGA_PLUGIN("renamed-test") {
  out.push_back(std::make_shared<renamed>(saga::definitions::account_lockout(), "plugin_lockout"));
}
