# Turns lib/timeline/timeline.html into a C source (run at build time):
#   cmake -DIN=timeline.html -DOUT=timeline_page.c -P embed_timeline.cmake
# The page's marker @@TRACE_JSON@@ is cut out: cc_timeline_page holds the
# text before it then the text after it, cc_timeline_split where the trace
# JSON goes (lib/core/trace.c).
file(READ ${IN} page)
string(FIND "${page}" "@@TRACE_JSON@@" split)
if(split LESS 0)
  message(FATAL_ERROR "${IN}: no @@TRACE_JSON@@ marker")
endif()
string(SUBSTRING "${page}" 0 ${split} before)
math(EXPR after_start "${split} + 14")
string(SUBSTRING "${page}" ${after_start} -1 after)
string(HEX "${before}${after}" hex)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from lib/timeline/timeline.html by cmake/embed_timeline.cmake. */\n"
     "#include <stddef.h>\n"
     "extern const char cc_timeline_page[];\nextern const size_t cc_timeline_split;\n"
     "const char cc_timeline_page[] = {\n${bytes}0x00};\n"
     "const size_t cc_timeline_split = ${split};\n")
