std = "luajit"
max_line_length = 100
files["spec"] = { std = "+busted" }
files["bench"] = { globals = { "ngx" } }
exclude_files = { "build*/**" }
