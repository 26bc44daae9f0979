package io.lakeloop.delta;

import io.delta.storage.HDFSLogStore;
import java.io.IOException;
import java.io.Writer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Delta's log store for tables on a local disk ({@code file:}), safe for writers in several
 * processes.
 *
 * <p>Delta's default store for local files checks that the commit's version is free, then
 * renames its temporary file onto it. Two JVMs committing the same version at once can both
 * pass the check: the second rename replaces the first commit, or leaves its checksum file
 * behind. Every Dagster run on one machine starts its own JVM, so two runs writing one table
 * could meet there.
 *
 * <p>This store publishes a new version with a hard link instead. Creating the link fails
 * when the version exists, in one step of the file system, so exactly one writer wins. The
 * loser gets {@link java.nio.file.FileAlreadyExistsException}, and Delta's optimistic commit
 * then retries at the next version or reports the conflict. The commit is written in full and
 * flushed to disk before it is linked, so a reader never sees part of it. Writes that may
 * replace a file ({@code _last_checkpoint}) are Delta's own, as are all writes on a file
 * system without hard links: Java reports those as an unsupported operation or, on Linux,
 * as the link's own error (vfat and some network mounts answer EPERM), and the store then
 * commits as Delta's default does, with a warning that names the reason.
 */
public class LocalLogStore extends HDFSLogStore {

    private static final Logger LOG = LoggerFactory.getLogger(LocalLogStore.class);

    public LocalLogStore(Configuration hadoopConf) {
        super(hadoopConf);
    }

    @Override
    public void write(Path path, Iterator<String> actions, Boolean overwrite,
                      Configuration hadoopConf) throws IOException {
        Path qualified = path.getFileSystem(hadoopConf).makeQualified(path);
        if (overwrite || !"file".equals(qualified.toUri().getScheme())) {
            super.write(path, actions, overwrite, hadoopConf);
            return;
        }
        java.nio.file.Path target = Paths.get(qualified.toUri());
        Files.createDirectories(target.getParent());
        java.nio.file.Path temp = target.resolveSibling(
                "." + target.getFileName() + "." + UUID.randomUUID() + ".tmp");
        try {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE);
                 Writer out = Channels.newWriter(channel, StandardCharsets.UTF_8)) {
                while (actions.hasNext()) {
                    out.write(actions.next());
                    out.write('\n');
                }
                out.flush();
                channel.force(true);
            }
            try {
                publish(target, temp);
            } catch (FileAlreadyExistsException taken) {
                throw taken;  // another writer published this version first
            } catch (UnsupportedOperationException | FileSystemException noLinks) {
                // A file system without hard links: Delta's own store (one process at a time),
                // which still refuses a version that exists when it checks.
                LOG.warn("{} cannot hold hard links ({}); committing with Delta's default "
                        + "store, which is safe for one writing process only",
                        target.getParent(), noLinks.getMessage());
                super.write(path, Files.readAllLines(temp).iterator(), false, hadoopConf);
            }
        } finally {
            Files.deleteIfExists(temp);
        }
    }

    /**
     * Publishes the written commit {@code temp} as {@code target}: fails with
     * {@link FileAlreadyExistsException} when the version exists. Its own method so that a
     * test can make it fail as a file system without hard links does.
     */
    protected void publish(java.nio.file.Path target, java.nio.file.Path temp)
            throws IOException {
        Files.createLink(target, temp);
    }
}
