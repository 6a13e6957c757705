# sagactl graph with --plugin (the test plugins of server_tests.cmake) and on
# shipped definitions with no database: sagactl as a child process.
saga_test(sagactl_graph_tests
  SOURCES server/sagactl_graph_test.cpp
  LIBS saga::engine saga::sqlite saga::definitions)
add_dependencies(sagactl_graph_tests sagactl)
target_compile_definitions(sagactl_graph_tests PRIVATE SAGACTL_PATH="$<TARGET_FILE:sagactl>")
foreach(p good renamed throws static_throw no_entry wrong_version)
  add_dependencies(sagactl_graph_tests saga_test_plugin_${p})
  string(TOUPPER ${p} P)
  target_compile_definitions(sagactl_graph_tests PRIVATE SAGA_TEST_PLUGIN_${P}="$<TARGET_FILE:saga_test_plugin_${p}>")
endforeach()
