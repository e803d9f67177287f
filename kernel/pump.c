// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: the key pump, /dev/qkd_pump.
 *
 * A reader opens the device, binds the file to a link of its network
 * namespace with the QKD_PUMP_ATTACH ioctl, and reads the link's key bytes as
 * one stream: keys in ascending id order, each byte delivered once. The key
 * being read is RESERVED for this file; when the file is closed in the middle
 * of a key, the rest of that key is wiped, never handed to anyone else.
 * read() blocks until key bytes arrive unless the file is O_NONBLOCK; poll()
 * reports EPOLLIN when bytes are ready and EPOLLHUP when the link is removed
 * (read then returns 0).
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/nsproxy.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "qks.h"

struct qks_pump {
	struct mutex lock;		/* one reader of this file at a time */
	struct qks_link *link;		/* NULL until attached */
	u64 cur;			/* id of the key we reserved */
	bool has_cur;
	u8 *bounce;			/* PAGE_SIZE, wiped after every use */
};

static int qks_pump_open(struct inode *inode, struct file *file)
{
	struct qks_pump *pump = kzalloc(sizeof(*pump), GFP_KERNEL);

	if (!pump)
		return -ENOMEM;
	pump->bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!pump->bounce) {
		kfree(pump);
		return -ENOMEM;
	}
	mutex_init(&pump->lock);
	file->private_data = pump;
	return stream_open(inode, file);
}

static int qks_pump_release_file(struct inode *inode, struct file *file)
{
	struct qks_pump *pump = file->private_data;

	if (pump->link) {
		if (pump->has_cur)
			qks_pump_release(pump->link, pump, pump->cur);
		qks_link_put(pump->link);
	}
	kfree_sensitive(pump->bounce);
	kfree(pump);
	return 0;
}

/* groups_search() is not exported; in_group_p() only looks at current. */
static bool qks_cred_in_group(const struct cred *cred, kgid_t gid)
{
	const struct group_info *gi = cred->group_info;
	int i;

	if (gid_eq(cred->fsgid, gid))
		return true;
	for (i = 0; gi && i < gi->ngroups; i++)
		if (gid_eq(gi->gid[i], gid))
			return true;
	return false;
}

/*
 * CAP_NET_ADMIN over the namespace, or the link's configured uid or gid, of
 * whoever opened the file: a descriptor handed to a more privileged process
 * (or an ioctl made through a setuid helper) must not widen access.
 */
static bool qks_pump_permitted(struct file *file, struct net *net,
			       struct qks_link *link)
{
	const struct cred *cred = file->f_cred;

	if (file_ns_capable(file, net->user_ns, CAP_NET_ADMIN))
		return true;
	if (uid_eq(cred->fsuid, link->uid))
		return true;
	return gid_valid(link->gid) && qks_cred_in_group(cred, link->gid);
}

static long qks_pump_attach(struct file *file, void __user *arg)
{
	struct net *net = current->nsproxy->net_ns;
	struct qks_pump *pump = file->private_data;
	struct qkd_pump_attach req;
	struct qks_link *link;
	long err = 0;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (strnlen(req.link, sizeof(req.link)) == sizeof(req.link) ||
	    !qks_link_name_valid(req.link))
		return -EINVAL;
	link = qks_link_find(net, req.link);
	if (!link)
		return -ENOENT;
	if (!qks_pump_permitted(file, net, link)) {
		qks_link_put(link);
		return -EACCES;
	}
	mutex_lock(&pump->lock);
	if (pump->link)
		err = -EBUSY;
	else
		pump->link = link;
	mutex_unlock(&pump->lock);
	if (err)
		qks_link_put(link);
	return err;
}

static long qks_pump_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case QKD_PUMP_ATTACH:
		return qks_pump_attach(file, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static ssize_t qks_pump_read(struct file *file, char __user *buf, size_t count,
			     loff_t *ppos)
{
	struct qks_pump *pump = file->private_data;
	struct qks_link *link;
	size_t copied = 0, n;
	bool eof = false;
	ssize_t err = 0;

	if (mutex_lock_interruptible(&pump->lock))
		return -ERESTARTSYS;
	link = pump->link;
	if (!link) {
		mutex_unlock(&pump->lock);
		return -ENOTCONN;
	}
	while (copied < count) {
		n = qks_pump_take(link, pump, &pump->cur, &pump->has_cur,
				  pump->bounce, min_t(size_t, count - copied, PAGE_SIZE),
				  &eof);
		if (n) {
			size_t done = n - copy_to_user(buf + copied, pump->bounce, n);

			memzero_explicit(pump->bounce, n);
			/* Only what reached the reader leaves the store. */
			qks_pump_commit(link, pump, pump->cur, &pump->has_cur, done);
			copied += done;
			if (done < n) {
				err = -EFAULT;
				break;
			}
			continue;
		}
		if (eof || copied)
			break;
		if (file->f_flags & O_NONBLOCK) {
			err = -EAGAIN;
			break;
		}
		mutex_unlock(&pump->lock);
		if (wait_event_interruptible(link->wq, qks_link_readable(link, false)))
			return -ERESTARTSYS;
		if (mutex_lock_interruptible(&pump->lock))
			return -ERESTARTSYS;
	}
	mutex_unlock(&pump->lock);
	return copied ? copied : err;
}

static __poll_t qks_pump_poll(struct file *file, poll_table *wait)
{
	struct qks_pump *pump = file->private_data;
	struct qks_link *link = READ_ONCE(pump->link);
	__poll_t mask = 0;

	if (!link)
		return EPOLLERR;
	poll_wait(file, &link->wq, wait);
	if (qks_link_readable(link, READ_ONCE(pump->has_cur)))
		mask |= EPOLLIN | EPOLLRDNORM;
	spin_lock(&link->lock);
	if (link->dead)
		mask |= EPOLLHUP;
	spin_unlock(&link->lock);
	return mask;
}

static const struct file_operations qks_pump_fops = {
	.owner = THIS_MODULE,
	.open = qks_pump_open,
	.release = qks_pump_release_file,
	.read = qks_pump_read,
	.poll = qks_pump_poll,
	.unlocked_ioctl = qks_pump_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = no_llseek,
};

static struct miscdevice qks_pump_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "qkd_pump",
	.fops = &qks_pump_fops,
	.mode = 0600,
};

int qks_pump_init(void)
{
	return misc_register(&qks_pump_dev);
}

void qks_pump_exit(void)
{
	misc_deregister(&qks_pump_dev);
}
