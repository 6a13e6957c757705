# saga::server: plugin loading against real shared libraries built here.
set(SAGA_TEST_PLUGINS good renamed renamed_v2 throws static_throw null_definition no_entry wrong_version
    wrong_abi)
foreach(p IN LISTS SAGA_TEST_PLUGINS)
  set(src ${p})
  if(p STREQUAL "wrong_abi")
    set(src wrong_version)
  elseif(p STREQUAL "renamed_v2")
    set(src renamed)
  endif()
  add_library(saga_test_plugin_${p} MODULE ${CMAKE_CURRENT_SOURCE_DIR}/server/plugins/${src}.cpp)
  target_link_libraries(saga_test_plugin_${p} PRIVATE saga::definitions)
  set_target_properties(saga_test_plugin_${p} PROPERTIES CXX_VISIBILITY_PRESET hidden)
  if(p STREQUAL "wrong_abi")
    target_compile_definitions(saga_test_plugin_${p} PRIVATE WRONG_ABI)
  elseif(p STREQUAL "renamed_v2")
    target_compile_definitions(saga_test_plugin_${p} PRIVATE RENAMED_VERSION=2)
  endif()
endforeach()

# plugin_test: load_plugin in-process; sagad_plugin_test: sagad --plugin as a child process;
# endpoints_file_test: sagad --endpoints-file as a child process; security_test: sagad with
# CURVE, grants and SIGHUP, driven by C++ clients and sagactl.
saga_test(server_tests
  SOURCES server/plugin_test.cpp server/sagad_plugin_test.cpp server/endpoints_file_test.cpp
          server/security_test.cpp
  LIBS saga::server saga::engine saga::sqlite saga::zmq saga::definitions)
add_dependencies(server_tests sagad sagactl)
target_compile_definitions(server_tests PRIVATE SAGAD_PATH="$<TARGET_FILE:sagad>"
                                                SAGACTL_PATH="$<TARGET_FILE:sagactl>")
foreach(p IN LISTS SAGA_TEST_PLUGINS)
  add_dependencies(server_tests saga_test_plugin_${p})
  string(TOUPPER ${p} P)
  target_compile_definitions(server_tests PRIVATE SAGA_TEST_PLUGIN_${P}="$<TARGET_FILE:saga_test_plugin_${p}>")
endforeach()
