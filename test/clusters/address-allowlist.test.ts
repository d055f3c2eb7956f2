import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { operatorConfig } from '../../src/cli/operator.js';
import { UsageError } from '../../src/cli/units.js';
import { AddressAllowlist, CidrListError, parseCidr } from '../../src/clusters/address-allowlist.js';

const list = (...cidrs: string[]): AddressAllowlist => AddressAllowlist.parse(cidrs);

describe('the admin\'s address allowlist (--remote-cluster-cidrs, --remote-pod-cidrs)', () => {
  test('an empty list allows nothing', () => {
    assert.equal(list().empty, true);
    assert.equal(list().allows('10.0.0.1'), false);
    assert.equal(list('', ' ').empty, true, 'blank entries (a trailing comma) add nothing');
  });

  test('IPv4 and IPv6 ranges contain what they say, and nothing next to them', () => {
    const l = list('10.20.0.0/16', '2001:db8:1::/48', '192.0.2.7/32');
    for (const inside of ['10.20.0.0', '10.20.255.255', '192.0.2.7', '2001:db8:1::1', '2001:db8:1:ffff:ffff:ffff:ffff:ffff', '2001:0db8:0001:0000::9']) assert.ok(l.allows(inside), inside);
    for (const outside of ['10.21.0.0', '10.19.255.255', '192.0.2.8', '2001:db8:2::1', '2001:db8::1']) assert.equal(l.allows(outside), false, outside);
  });

  test('an IPv4-mapped IPv6 address is the IPv4 it dials', () => {
    assert.ok(list('10.0.0.0/8').allows('::ffff:10.1.2.3'));
    assert.ok(list('10.0.0.0/8').allows('::ffff:a01:203'));
    assert.equal(list('::/0').allows('::ffff:10.1.2.3'), false, 'an IPv6 range does not cover an IPv4 destination');
    assert.equal(list('0.0.0.0/0').allows('::ffff:127.0.0.1'), false, 'loopback behind the mapping is loopback');
  });

  test('loopback, link-local, "this host" and the metadata addresses need a range inside them: a wide range is not enough', () => {
    const everything = list('0.0.0.0/0', '::/0');
    for (const special of ['127.0.0.1', '127.9.9.9', '169.254.169.254', '169.254.1.1', '0.0.0.0', '0.1.2.3', '::1', '::', 'fe80::1', 'fe80::1%eth0', 'fd00:ec2::254', '64:ff9b::a9fe:a9fe', '64:ff9b::127.0.0.1']) {
      assert.equal(everything.allows(special), false, special);
    }
    assert.ok(everything.allows('203.0.113.5') && everything.allows('fd00:ec2::253') && everything.allows('64:ff9b::10.0.0.1'), 'everything else is allowed by the wide ranges');
  });

  test('listing a special range explicitly allows it, and the metadata address only by itself', () => {
    assert.ok(list('127.0.0.1/32').allows('127.0.0.1'));
    assert.equal(list('127.0.0.1/32').allows('127.0.0.2'), false);
    assert.ok(list('127.0.0.0/8').allows('127.0.0.2'));
    assert.ok(list('169.254.0.0/16').allows('169.254.1.1'));
    assert.equal(list('169.254.0.0/16').allows('169.254.169.254'), false, 'link-local listed, the metadata address not');
    assert.ok(list('169.254.169.254/32').allows('169.254.169.254'));
    assert.equal(list('fd00::/8').allows('fd00:ec2::254'), false);
    assert.ok(list('fd00:ec2::254/128').allows('fd00:ec2::254'));
    assert.ok(list('::1/128').allows('::1'));
  });

  test('anything that is not an IP address is refused', () => {
    const everything = list('0.0.0.0/0', '::/0');
    for (const notAnIp of ['', 'localhost', 'example.com', '10.0.0.1:80', '[::1]', '1.2.3', '01.2.3.4']) assert.equal(everything.allows(notAnIp), false, notAnIp);
  });

  test('a CIDR must be canonical, with a prefix: the NetworkPolicy takes the same text', () => {
    assert.deepEqual({ ...parseCidr('10.0.0.0/8'), bits: String(parseCidr('10.0.0.0/8').bits) }, { family: 4, bits: String(10n << 24n), prefix: 8, text: '10.0.0.0/8' });
    const refused: [string, RegExp][] = [
      ['10.0.0.1', /is not a CIDR/],
      ['10.0.0.1/8', /host bits set \(the network is 10\.0\.0\.0\/8\)/],
      ['10.0.0.0/33', /at most 32/],
      ['fd00::/129', /at most 128/],
      ['fd00::1/64', /host bits set \(the network is fd00::\/64\)/],
      ['10.0.0.0/x', /is not a CIDR/],
      ['example.com/24', /is not a CIDR/],
      ['10.0.0.0/-1', /is not a CIDR/],
    ];
    for (const [text, message] of refused) assert.throws(() => AddressAllowlist.parse([text]), (err: unknown) => err instanceof CidrListError && message.test(err.message), text);
  });

  test('the operator flags: a list the operator can read is kept as written; one it cannot stops it at start with the flag named', () => {
    const config = operatorConfig(['--remote-cluster-cidrs', '203.0.113.0/24, 2001:db8::/32,', '--remote-pod-cidrs', '10.8.0.0/14'], {});
    assert.deepEqual([config.remoteClusterCidrs, config.remotePodCidrs], [['203.0.113.0/24', '2001:db8::/32'], ['10.8.0.0/14']]);
    assert.deepEqual(operatorConfig([], {}).remoteClusterCidrs, [], 'default: none');
    assert.throws(() => operatorConfig(['--remote-cluster-cidrs', '10.0.0.0/8,10.1.0.1/16'], {}), (err: unknown) => err instanceof UsageError && /^--remote-cluster-cidrs: "10\.1\.0\.1\/16" has host bits set/.test(err.message));
    assert.throws(() => operatorConfig(['--remote-pod-cidrs', 'pods'], {}), (err: unknown) => err instanceof UsageError && /^--remote-pod-cidrs: "pods" is not a CIDR/.test(err.message));
  });
});
