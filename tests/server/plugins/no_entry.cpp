// A shared library that is not a saga plugin: it exports no entry point.
extern "C" __attribute__((visibility("default"))) int not_a_saga_plugin() {
  return 42;
}
