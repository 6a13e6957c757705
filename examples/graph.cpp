// Prints a compiled definition's graph as Graphviz DOT, Mermaid or JSON:
//   saga-graph order_lifecycle --format mermaid
// (sagactl graph reads the same graph from a database instead.)

#include <iostream>

#include <CLI/CLI.hpp>

#include "saga/definitions/catalog.hpp"
#include "saga/graph.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Prints a compiled workflow definition's graph"};
  std::string name;
  std::string format = "dot";
  app.add_option("definition", name, "order_lifecycle, payment_notice or account_lockout")
      ->required()
      ->check(CLI::IsMember(saga::definitions::names()));
  app.add_option("--format", format, "dot, mermaid or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"dot", "mermaid", "json"}));
  CLI11_PARSE(app, argc, argv);

  auto d = saga::definitions::by_name(name);
  const auto& g = d->graph();
  if (format == "dot")
    std::cout << saga::to_dot(g);
  else if (format == "mermaid")
    std::cout << saga::to_mermaid(g);
  else
    std::cout << saga::to_json(g).dump(2) << "\n";
  return 0;
}
