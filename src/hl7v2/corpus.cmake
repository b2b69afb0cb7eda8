# Hostile-input tests (included from src/hl7v2/CMakeLists.txt; independent of the validator):
# - hl7v2_corpus_test: every file of the shared corpus (ISTHMUS_CORPUS_DIR/hl7v2-samples), its
#   INDEX.tsv facts, truncated and large variants;
# - hl7v2_fuzz_regression_test: replays fuzz/regressions/* and fuzz/seeds/* through the very
#   bodies the libFuzzer targets run (fuzz/fuzz_bodies.cc).
isthmus_test(hl7v2_corpus_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/corpus_test.cc
    ${CMAKE_SOURCE_DIR}/fuzz/fuzz_bodies.cc
  LIBS isthmus_hl7v2)
target_include_directories(hl7v2_corpus_test PRIVATE ${CMAKE_SOURCE_DIR})

isthmus_test(hl7v2_fuzz_regression_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/fuzz_regression_test.cc
    ${CMAKE_SOURCE_DIR}/fuzz/fuzz_bodies.cc
  LIBS isthmus_hl7v2)
target_include_directories(hl7v2_fuzz_regression_test PRIVATE ${CMAKE_SOURCE_DIR})
