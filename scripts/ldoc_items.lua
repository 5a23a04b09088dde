-- An LDoc filter (`ldoc --filter ldoc_items.list ...`): prints one line per
-- documented item, "module<TAB>item<TAB>length of its summary", for
-- scripts/docs.lua to compare with what the modules really export. LDoc
-- runs it under its own Lua (5.1 or 5.2), so it keeps to that language.
local M = {}

function M.list(modules)
  for m in modules:iter() do
    io.write(m.name, "\t", "", "\t", tostring(#(m.summary or "")), "\n")
    for item in m.items:iter() do
      io.write(m.name, "\t", item.name, "\t", tostring(#(item.summary or "")), "\n")
    end
  end
end

return M
