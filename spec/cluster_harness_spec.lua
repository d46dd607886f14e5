-- cluster_harness_spec.lua -- spec/cluster_helpers.lua itself: the 6-node
-- cluster later cluster specs use comes up with cluster_state:ok on every
-- node and 3 primaries, answers CLUSTER KEYSLOT, routes a key set through
-- one node to readers on all the others (redis-cli -c), and leaves no
-- process and no directory behind when stopped.

local helpers = require "helpers"
local cluster = require "cluster_helpers"

describe("cluster_helpers #redis", function()
    local topo

    lazy_setup(function()
        topo = cluster.start()
        print(("6-node cluster: created after %d ms, ready after %d ms")
              :format(topo.create_ms, topo.ready_ms))
    end)

    lazy_teardown(function()
        cluster.stop(topo)
    end)

    it("starts 6 nodes, each with cluster_state:ok", function()
        assert.are.equal(cluster.NODES, #topo.nodes)
        for _, node in ipairs(topo.nodes) do
            assert.truthy(helpers.process_alive(node.pid))
            assert.matches("cluster_state:ok", cluster.cli(node.port, "CLUSTER INFO"))
        end
    end)

    it("has 3 primaries, each with one replica", function()
        assert.are.equal(cluster.PRIMARIES, #topo.primaries)
        for _, port in ipairs(topo.primaries) do
            local role = cluster.cli(port, "--raw ROLE")
            assert.matches("^master\n", role)
            assert.are.equal(1, select(2, role:gsub("\n127%.0%.0%.1\n", "")))
        end
    end)

    it("gives the slot of a key through CLUSTER KEYSLOT", function()
        assert.are.equal(12739, cluster.slot_of(topo, "123456789"))
        assert.are.equal(cluster.slot_of(topo, "bar"),
                         cluster.slot_of(topo, "foo{bar}", topo.nodes[6].port))
    end)

    it("reads a key set through one node from every other node with -c", function()
        local first = topo.nodes[1].port
        assert.matches("OK", cluster.cli(first, "-c SET harness:key 'across nodes'"))
        for i = 2, cluster.NODES do
            assert.are.equal("across nodes\n",
                             cluster.cli(topo.nodes[i].port, "-c --raw GET harness:key"))
        end
    end)

    it("stops every node by PID and removes its directory", function()
        local pids, dirs = {}, {}
        for i, node in ipairs(topo.nodes) do
            pids[i], dirs[i] = node.pid, node.dir
        end
        cluster.stop(topo)
        for i = 1, cluster.NODES do
            assert.falsy(helpers.process_alive(pids[i]))
            assert.is_nil(io.open(dirs[i] .. "/nodes.conf"))
        end
    end)
end)
