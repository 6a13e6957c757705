// A program outside this project that opens the PostgreSQL store from the installed package:
// prints the error and exits 1 when the store cannot connect (the install test runs it so).
#include <iostream>

#include "saga/postgres/store.hpp"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  saga::postgres::options o;
  o.conninfo = argv[1];
  try {
    saga::postgres::store store(o);
    std::cout << "schema " << store.schema() << " version " << store.schema_version() << "\n";
    return 0;
  } catch (const saga::store_error& e) {
    std::cout << e.what() << "\n";
    return 1;
  }
}
