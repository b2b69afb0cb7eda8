# isthmus_test(NAME SOURCES... LIBS ...): one GoogleTest binary registered with CTest.
function(isthmus_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    ISTHMUS_CORPUS_DIR="${ISTHMUS_CORPUS_DIR}"
    ISTHMUS_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    ISTHMUS_BINARY_DIR="${CMAKE_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()
